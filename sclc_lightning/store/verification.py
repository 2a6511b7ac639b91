"""Checking a generation's files against its manifest record before anything reads them.

The folder must hold exactly the files the record names; each file's SHA-256 digest must be the
recorded one; each shard must hold the recorded number of rows of the tensors the item structure
needs, with the real data's shape and dtype, finite values and source indices into the real data.
Every failure is a :class:`~sclc_lightning.store.manifest.RunDirectoryError` naming the file and
what differs. Part of :class:`~sclc_lightning.store.synthetic.SyntheticStore`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from sclc_lightning._files import NotARegularFile, check_regular, read_regular, sha256_file
from sclc_lightning.items.codec import ItemCodec
from sclc_lightning.store.manifest import RunDirectoryError, StoredGeneration

__all__ = ["STRINGS_FILE", "file_sha256", "regular", "verify_generation"]

STRINGS_FILE = "strings.json"
_CHUNK = 16 << 20


def file_sha256(path: Path) -> str:
    """The hex SHA-256 digest of a file's bytes."""
    return sha256_file(path, chunk=_CHUNK)


def _expected_tensors(codec: ItemCodec) -> set[str]:
    names = {"data", "source_index"}
    for key, kind in zip(codec.keys, codec.kinds):
        if key != codec.data_key and kind != "str":
            names.add(codec.storage_name(key))
    return names


def regular(path: Path, folder: bool = False) -> None:
    """Refuse ``path`` unless it is a regular file (``folder``: a folder) of the run directory
    itself: a symbolic link (which may lead out of it), a FIFO (reading it hangs) or a device
    (``/dev/zero`` never ends) is refused before anything opens it.

    Raises:
        RunDirectoryError: naming the path and what it is.
    """
    try:
        check_regular(path, folder=folder)
    except NotARegularFile as err:
        raise RunDirectoryError(
            f"{err}; a run directory holds only the files and folders the loop wrote. Restore it, or start a new run."
        ) from None


def _check_files(folder: Path, record: StoredGeneration) -> None:
    if not os.path.lexists(folder):
        raise RunDirectoryError(f"{folder} is missing; the manifest records generation {record.generation} there.")
    regular(folder, folder=True)
    expected = {shard.name for shard in record.shards}
    checked = record.strings_sha256 is not None or any(s.sha256 is not None for s in record.shards)
    if record.strings_sha256 is not None or (not checked and (folder / STRINGS_FILE).exists()):
        expected.add(STRINGS_FILE)  # records of format 1 do not say whether there is one
    present = set(os.listdir(folder))
    for name in sorted(present & expected):
        regular(folder / name)
    if present - expected:
        raise RunDirectoryError(f"{folder} holds files the manifest does not record: {sorted(present - expected)}.")
    if expected - present:
        raise RunDirectoryError(f"{folder} lacks files the manifest records: {sorted(expected - present)}.")
    if sum(shard.rows for shard in record.shards) != record.count:
        raise RunDirectoryError(
            f"{folder}: the manifest records {record.count} items for generation {record.generation} but"
            f" shards of {sum(s.rows for s in record.shards)} rows."
        )


def _check_digest(path: Path, recorded: str | None) -> None:
    regular(path)
    if recorded is not None and (actual := file_sha256(path)) != recorded:
        raise RunDirectoryError(
            f"{path} has SHA-256 {actual[:16]}…, the manifest records {recorded[:16]}…: the file changed after"
            " it was written."
        )


def _check_tensor(path: Path, name: str, tensor: torch.Tensor, rows: int, codec: ItemCodec, real_size: int) -> None:
    if tensor.shape[:1] != (rows,):
        raise RunDirectoryError(
            f"{path}: tensor {name!r} has {tuple(tensor.shape)[:1]} rows, the manifest records {rows}."
        )
    if name == "data" and (tuple(tensor.shape[1:]) != codec.data_shape or tensor.dtype != codec.data_dtype):
        raise RunDirectoryError(
            f"{path}: data is {tensor.dtype} of item shape {tuple(tensor.shape[1:])}, the real data is"
            f" {codec.data_dtype} of shape {codec.data_shape}."
        )
    if name == "source_index":
        if tensor.dtype != torch.int64 or tensor.dim() != 1:
            raise RunDirectoryError(f"{path}: source_index is {tensor.dtype} of shape {tuple(tensor.shape)}.")
        if rows and (int(tensor.min()) < 0 or int(tensor.max()) >= real_size):
            raise RunDirectoryError(
                f"{path}: source_index holds {int(tensor.min())}..{int(tensor.max())}, outside the"
                f" {real_size} real items."
            )
    if tensor.is_floating_point():
        bad = ~torch.isfinite(tensor)
        if bool(bad.any()):
            count = int(bad.flatten(1).any(1).sum()) if tensor.dim() > 1 else int(bad.sum())
            raise RunDirectoryError(f"{path}: {count} rows of {name!r} hold NaN or infinite values.")


def _check_shard(path: Path, rows: int, codec: ItemCodec, real_size: int) -> None:
    try:
        with safe_open(str(path), framework="pt") as handle:
            names = set(handle.keys())
            expected = _expected_tensors(codec)
            if names != expected:
                raise RunDirectoryError(f"{path} holds tensors {sorted(names)}, expected {sorted(expected)}.")
            for name in sorted(names):
                _check_tensor(path, name, handle.get_tensor(name), rows, codec, real_size)
    except RunDirectoryError:
        raise
    except Exception as err:  # a truncated or garbled file: safetensors' own error, named
        raise RunDirectoryError(f"{path} cannot be read as safetensors: {err}.") from None


def _check_strings(path: Path, count: int, codec: ItemCodec) -> None:
    try:
        values: Any = json.loads(read_regular(path))
    except NotARegularFile as err:
        raise RunDirectoryError(str(err)) from None
    except (OSError, ValueError) as err:
        raise RunDirectoryError(f"{path} cannot be read as JSON: {err}.") from None
    expected = {codec.storage_name(k) for k, kind in zip(codec.keys, codec.kinds) if kind == "str"}
    if not isinstance(values, dict) or set(values) != expected:
        found = sorted(values) if isinstance(values, dict) else type(values).__name__
        raise RunDirectoryError(f"{path} holds fields {found}, expected {sorted(expected)}.")
    for name, column in values.items():
        if not (isinstance(column, list) and len(column) == count and all(isinstance(v, str) for v in column)):
            raise RunDirectoryError(f"{path}: field {name!r} must be {count} strings.")


def verify_generation(folder: Path, record: StoredGeneration, codec: ItemCodec, real_size: int) -> None:
    """Check generation ``record.generation``'s files in ``folder`` (see the module docstring).

    Raises:
        RunDirectoryError: the first difference found, naming the file.
    """
    _check_files(folder, record)
    for shard in record.shards:
        path = folder / shard.name
        _check_digest(path, shard.sha256)
        _check_shard(path, shard.rows, codec, real_size)
    strings = folder / STRINGS_FILE
    if os.path.lexists(strings):
        _check_digest(strings, record.strings_sha256)
        _check_strings(strings, record.count, codec)
    elif any(kind == "str" for kind in codec.kinds):
        raise RunDirectoryError(f"{strings} is missing; the items have string fields.")
