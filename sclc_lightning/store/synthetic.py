"""Synthetic data on disk: one folder per generation of safetensors shards and a JSON manifest.

:class:`SyntheticStore` is the only code that knows this format (with :mod:`.manifest`, the
records, and :mod:`.verification`, the checks on read). Layout under ``root``::

    manifest.json              # run id, configuration, item structure, one record per generation
    manifest.journal           # records added since manifest.json was last written whole
    gen_0001/shard_00000.safetensors   # tensors "data", "source_index", "field.<key>"
    gen_0001/strings.json      # only when items carry string fields (prompts)
    gen_0002/...
    .exchange/                 # multi-process runs: each rank's raw samples (or its shards' notes)
    .sclc.lock, .sclc.lock.json        # the lock of the fit using the folder, and its holder

A generation folder is written under a temporary name and renamed when complete; its record,
with each file's SHA-256 digest, is then appended to ``manifest.journal`` (one line, written and
``fsync``-ed), so that a generation costs the same after thousands as after one. The journal
names the version of ``manifest.json`` it extends (its digest): every ``JOURNAL_LIMIT`` records,
and whenever the manifest changes otherwise (checkpointed, finished, a resume dropping newer
generations), ``manifest.json`` is rewritten whole, atomically, and the journal removed; a
journal of another version is ignored, and a last line cut short by a crash is dropped (that
generation is sampled again). Every read-back checks
the files against the record first (:meth:`SyntheticStore.open_generation`). Nothing is ever
unpickled: tensors come from safetensors, the rest from JSON. Shards are read lazily, one row at
a time, through memory-mapped ``safe_open`` handles, so serving older generations costs no memory.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save
from torch import Tensor
from torch.utils.data import Dataset

from sclc_lightning._files import (
    atomic_write,
    fsync_folder,
    sha256_bytes,
    temporary_name,
    write_synced,
)
from sclc_lightning.items.codec import ItemCodec, SyntheticBatch
from sclc_lightning.items.real import RealData
from sclc_lightning.store.journal import ManifestFiles, naming
from sclc_lightning.store.manifest import (
    Manifest,
    RunDirectoryError,
    Shard,
    StoredGeneration,
)
from sclc_lightning.store.verification import STRINGS_FILE, verify_generation

__all__ = ["EXCHANGE_FOLDER", "RunDirectoryError", "SyntheticSet", "SyntheticStore", "build_items", "encode_batch"]

#: Where the ranks exchange a round's samples (:mod:`sclc_lightning.loop.exchange`); left over
#: by a crash, it is removed with the other leftovers.
EXCHANGE_FOLDER = ".exchange"

#: Leftovers of an interrupted write: temporary and replaced generation folders, and the
#: temporary files (:func:`~sclc_lightning._files.temporary_name`) of the files the run keeps here.
_STALE = re.compile(
    r"\.(gen_\d{4}\.(tmp|stale)|(manifest\.json|sclc\.lock\.json|history\.jsonl?|initial_state\.safetensors)\.tmp)-.+"
)
_GENERATION_FOLDER = re.compile(r"gen_(\d{4,})")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    with naming(path):
        atomic_write(path, data)


def encode_batch(batch: SyntheticBatch, real: RealData) -> tuple[dict[str, Tensor], dict[str, list[str]]]:
    """The fields of ``batch``'s items as stored: ``data``, ``source_index``, every other field
    as a tensor ``field.<key>`` (strings in a separate mapping). A field is copied from the
    item's source real item unless ``batch.fields`` holds it (generated with the data, or
    derived from it)."""
    codec = real.codec
    fields, strings = codec.encode_fields(real.items(batch.source_index.tolist())) if codec.other_keys else ({}, {})
    for key, values in (batch.fields or {}).items():  # built for the items themselves, not copied
        fields[codec.storage_name(key)] = values
    # a corrector may return a view (a transpose): the same values, stored in row order
    tensors = {"data": batch.data, "source_index": batch.source_index.to(torch.int64), **fields}
    return {name: tensor.contiguous() for name, tensor in tensors.items()}, strings


def build_items(batch: SyntheticBatch, real: RealData) -> list[Any]:
    """The synthetic items of ``batch`` exactly as training will read them back from disk."""
    tensors, strings = encode_batch(batch, real)
    fields = {name: t for name, t in tensors.items() if name.startswith("field.")}
    items = []
    for row in range(len(batch)):
        values: dict[str, Any] = {name: t[row] for name, t in fields.items()}
        values.update({name: column[row] for name, column in strings.items()})
        items.append(real.codec.build(tensors["data"][row], values))
    return items


class SyntheticSet(Dataset[Any]):
    """The synthetic items of one generation, read lazily from its shards.

    Args:
        folder: the generation's folder.
        shards: ``(file name, rows)`` of each shard, in order.
        codec: rebuilds items with the structure of the real ones.

    Open it through :meth:`SyntheticStore.open_generation`, which checks the files first.
    """

    def __init__(self, folder: Path, shards: list[tuple[str, int]], codec: ItemCodec):
        self.folder = Path(folder)
        self.shards = shards
        self.codec = codec
        self._ends = torch.tensor([rows for _, rows in shards], dtype=torch.int64).cumsum(0).tolist()
        strings_path = self.folder / STRINGS_FILE
        self._strings: dict[str, list[str]] = json.loads(strings_path.read_text()) if strings_path.exists() else {}
        self._handles: dict[int, Any] = {}
        self._slices: dict[int, dict[str, Any]] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getstate__(self) -> dict[str, Any]:
        # safe_open handles cannot cross process boundaries (DataLoader workers, spawn).
        state = self.__dict__.copy()
        state["_handles"], state["_slices"] = {}, {}
        return state

    def _handle(self, shard: int) -> Any:
        if self._pid != os.getpid():
            self._handles, self._slices, self._pid = {}, {}, os.getpid()
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.folder / self.shards[shard][0]), framework="pt")
        return self._handles[shard]

    def _shard_slices(self, shard: int) -> dict[str, Tensor]:
        """The data and field tensors of one shard, opened once. safetensors maps them from the
        file (no copy; pages are read when touched), and indexing a row of a mapped tensor costs
        about 1 µs against about 20 µs through ``get_slice``, which matters for small items."""
        if self._pid != os.getpid() or shard not in self._slices:
            handle = self._handle(shard)
            names = [n for n in handle.keys() if n == "data" or n.startswith("field.")]
            self._slices[shard] = {name: handle.get_tensor(name) for name in names}
        return self._slices[shard]

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} synthetic items")
        shard = bisect.bisect_right(self._ends, index)
        row = index - (self._ends[shard - 1] if shard else 0)
        fields: dict[str, Any] = {name: rows[row] for name, rows in self._shard_slices(shard).items()}
        for name, values in self._strings.items():
            fields[name] = values[index]
        return self.codec.build(fields.pop("data"), fields)

    def load(self, name: str = "data") -> Tensor:
        """One stored tensor of all rows, e.g. ``"data"`` or ``"source_index"``."""
        parts = []
        for shard in range(len(self.shards)):
            parts.append(self._handle(shard).get_tensor(name))
        return torch.cat(parts)


class SyntheticStore:
    """Reads and writes a run's synthetic generations and manifest under ``root``.

    Examples:
        >>> import tempfile
        >>> real = RealData([torch.tensor([float(i)]) for i in range(4)], ItemCodec.infer(torch.zeros(1)))
        >>> store = SyntheticStore(tempfile.mkdtemp())
        >>> _ = store.create("run-a", {}, real.codec)
        >>> batch = SyntheticBatch(torch.full((3, 1), 7.0), torch.tensor([0, 1, 2]))
        >>> record = store.write_generation(
        ...     1, batch, real, shard_rows=2, sampled_at_step=10, settings={}, seconds_sampling=0.0,
        ...     seconds_correcting=0.0)
        >>> [(s.name, s.rows) for s in record.shards], float(store.open_generation(record, real.codec, 4)[2])
        ([('shard_00000.safetensors', 2), ('shard_00001.safetensors', 1)], 7.0)
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self._verified: dict[int, str] = {}  # generation -> the digest of the record verified
        self._files = ManifestFiles(self.root)

    @property
    def manifest_path(self) -> Path:
        return self._files.manifest_path

    @staticmethod
    def folder_name(generation: int) -> str:
        """The folder of generation ``generation``: ``gen_0001``."""
        return f"gen_{generation:04d}"

    # -- the manifest ------------------------------------------------------------------------
    @property
    def journal_path(self) -> Path:
        """Records appended since ``manifest.json`` was last written whole."""
        return self._files.journal_path

    def read_manifest(self) -> Manifest | None:
        """The manifest, or ``None`` when there is none yet (:class:`~.journal.ManifestFiles`).

        Raises:
            RunDirectoryError: it cannot be read or parsed (the message names it and the field).
        """
        return self._files.read()

    def write_manifest(self, manifest: Manifest) -> None:
        """Replace the manifest atomically, whole (the journal is then removed)."""
        self._files.write(manifest)

    def compact(self) -> None:
        """Fold the journal into ``manifest.json`` (written whole), for readers of that file alone."""
        self._files.compact()

    def create(self, run_id: str, config: Mapping[str, Any], codec: ItemCodec) -> Manifest:
        """Start the manifest of a new run (no generations yet)."""
        manifest = Manifest(run_id, dict(config), codec.to_json())
        self.write_manifest(manifest)
        return manifest

    def mark(self, *, checkpointed: bool | None = None, finished: bool | None = None) -> None:
        """Record in the manifest that the run was checkpointed, or that its fit ended."""
        manifest = self.read_manifest()
        if manifest is not None:
            updated = manifest.with_state(checkpointed=checkpointed, finished=finished)
            if updated != manifest:
                self.write_manifest(updated)

    def records(self) -> dict[int, StoredGeneration]:
        """The generations on disk, by generation (none without a manifest)."""
        manifest = self.read_manifest()
        return {} if manifest is None else manifest.records()

    # -- housekeeping --------------------------------------------------------------------------
    def remove_stale(self) -> list[str]:
        """Remove what interrupted writes left: temporary files and folders, exchange files, and
        generation folders the manifest does not record (written, but never recorded). Call it
        only while holding the directory's lock.

        Returns:
            The names removed.
        """
        if not self.root.is_dir():
            return []
        manifest = self.read_manifest()
        recorded = set() if manifest is None else {self.folder_name(g) for g in manifest.records()}
        removed = []
        for path in sorted(self.root.iterdir()):
            folder = _GENERATION_FOLDER.fullmatch(path.name)
            if _STALE.fullmatch(path.name) or (folder and path.name not in recorded) or path.name == EXCHANGE_FOLDER:
                # a link is removed, never followed: what it points to is not the run's
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed

    def start_over(self) -> None:
        """Remove the manifest and every generation (a run that crashed before its first
        checkpoint, which nothing can resume). Call it only while holding the directory's lock."""
        self.manifest_path.unlink(missing_ok=True)
        self.journal_path.unlink(missing_ok=True)
        self.remove_stale()

    # -- generations -------------------------------------------------------------------------
    def write_generation(
        self,
        generation: int,
        batch: SyntheticBatch,
        real: RealData,
        *,
        shard_rows: int,
        sampled_at_step: int,
        settings: Mapping[str, Any],
        seconds_sampling: float,
        seconds_correcting: float,
        statistics: Mapping[str, float] | None = None,
    ) -> StoredGeneration:
        """Store one generation's items and add its record, with each file's digest, to the manifest.

        Each synthetic item keeps the other fields (labels, prompts, ...) of its source real
        item ``batch.source_index``, except those in ``batch.fields`` (generated with the data or
        derived from it). The folder is complete before the manifest names it: the three steps
        :meth:`start_generation`, :meth:`write_shards` and :meth:`commit_generation`, which the
        ranks of a multi-process run share (each writes its own shards, global rank zero commits).

        Raises:
            FileNotFoundError: the run has no manifest (:meth:`create` first).
            OSError: writing failed (a full disk); the message names the file.
        """
        self._require_manifest()
        tensors, strings = encode_batch(batch, real)
        folder = self.start_generation(generation)
        try:
            shards = self.write_shards(folder, tensors, shard_rows, first=0, at_least_one=True)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return self.commit_generation(
            generation,
            folder,
            shards,
            strings,
            sampled_at_step=sampled_at_step,
            settings=settings,
            seconds_sampling=seconds_sampling,
            seconds_correcting=seconds_correcting,
            statistics=statistics,
        )

    def _require_manifest(self) -> Manifest:
        if (manifest := self.read_manifest()) is None:
            raise FileNotFoundError(f"{self.manifest_path} is missing; the store of a run starts with `create`.")
        return manifest

    def start_generation(self, generation: int) -> Path:
        """A new, empty temporary folder for generation ``generation``'s shards (a hidden name
        never reused; :meth:`remove_stale` removes it if the write never commits)."""
        folder = temporary_name(self.root / self.folder_name(generation))
        with naming(folder):
            folder.mkdir(parents=True)
        return folder

    @staticmethod
    def write_shards(
        folder: Path, tensors: Mapping[str, Tensor], shard_rows: int, *, first: int, at_least_one: bool = False
    ) -> list[Shard]:
        """Write ``tensors`` (the encoded rows of :func:`encode_batch`) into ``folder`` as shards
        of ``shard_rows`` rows, numbered from ``first``, each ``fsync``-ed; their descriptions
        with digests. No rows write no shard, unless ``at_least_one`` (an empty generation)."""
        count = int(next(iter(tensors.values())).shape[0])
        shards: list[Shard] = []
        for index, start in enumerate(range(0, max(count, 1 if at_least_one else 0), shard_rows), start=first):
            # clone: safetensors refuses tensors that share memory (views of one buffer)
            rows = {name: t[start : start + shard_rows].clone() for name, t in tensors.items()}
            name = f"shard_{index:05d}.safetensors"
            data = save(rows)
            with naming(folder / name):
                write_synced(folder / name, data)
            shards.append(Shard(name, int(rows["data"].shape[0]), sha256_bytes(data)))
        return shards

    @staticmethod
    def shard_count(rows: int, shard_rows: int) -> int:
        """How many shards :meth:`write_shards` writes for ``rows`` rows."""
        return -(-rows // shard_rows)

    def commit_generation(
        self,
        generation: int,
        folder: Path,
        shards: list[Shard],
        strings: Mapping[str, list[str]],
        *,
        sampled_at_step: int,
        settings: Mapping[str, Any],
        seconds_sampling: float,
        seconds_correcting: float,
        statistics: Mapping[str, float] | None = None,
    ) -> StoredGeneration:
        """Complete the temporary ``folder`` holding ``shards`` (the items' string fields, if
        any, are written beside them), rename it into place and append its record last. On a
        failure the folder is removed.

        Raises:
            FileNotFoundError: the run has no manifest (:meth:`create` first).
            OSError: writing failed (a full disk); the message names the file.
        """
        manifest = self._require_manifest()
        try:
            strings_digest = self._finish_folder(generation, folder, strings)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        record = StoredGeneration(
            generation=generation,
            count=sum(shard.rows for shard in shards),
            shards=tuple(shards),
            sampled_at_step=sampled_at_step,
            settings=json.loads(json.dumps(dict(settings))),  # stored as read back
            seconds_sampling=seconds_sampling,
            seconds_correcting=seconds_correcting,
            strings_sha256=strings_digest,
            statistics=None if not statistics else {k: float(v) for k, v in statistics.items()},
        )
        self._files.append(manifest, record)
        return record

    def _finish_folder(self, generation: int, tmp: Path, strings: Mapping[str, list[str]]) -> str | None:
        strings_digest = None
        if strings:
            data = json.dumps(dict(strings)).encode()
            with naming(tmp / STRINGS_FILE):
                write_synced(tmp / STRINGS_FILE, data)
            strings_digest = sha256_bytes(data)
        fsync_folder(tmp)
        final = self.root / self.folder_name(generation)
        if final.exists():
            stale = self.root / f".{final.name}.stale-{uuid.uuid4().hex}"
            os.replace(final, stale)
            os.replace(tmp, final)
            if stale.is_symlink():  # removed, never followed
                stale.unlink()
            else:
                shutil.rmtree(stale, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_folder(self.root)
        self._verified.pop(generation, None)
        return strings_digest

    def verify(self, record: StoredGeneration, codec: ItemCodec, real_size: int) -> None:
        """Check one generation's files against its record (once per record and store).

        Raises:
            RunDirectoryError: a file is missing, extra, changed or holds bad values; the message
                names it.
        """
        if self._verified.get(record.generation) != record.digest():
            verify_generation(self.root / self.folder_name(record.generation), record, codec, real_size)
            self._verified[record.generation] = record.digest()

    def open_generation(self, record: StoredGeneration, codec: ItemCodec, real_size: int) -> SyntheticSet:
        """The lazily read dataset of one generation, after checking its files (:meth:`verify`)."""
        self.verify(record, codec, real_size)
        shards = [(shard.name, shard.rows) for shard in record.shards]
        return SyntheticSet(self.root / self.folder_name(record.generation), shards, codec)

    def check_expected(self, expected: list[list[Any]], manifest: Manifest) -> None:
        """Check the manifest against the records a checkpoint saw: ``[generation, count, digest]``
        of each generation up to the checkpoint's.

        Raises:
            RunDirectoryError: a record is missing or differs, naming the manifest and the generation.
        """
        records = manifest.records()
        for generation, count, digest in expected:
            record = records.get(generation)
            if record is None:
                raise RunDirectoryError(
                    f"{self.manifest_path} has no record of generation {generation}, which the checkpoint"
                    f" expects ({count} items)."
                )
            if record.digest() != digest:
                what = f"{count} items then, {record.count} now" if record.count != count else "its files or settings"
                raise RunDirectoryError(
                    f"{self.manifest_path}: the record of generation {generation} is not the one the checkpoint"
                    f" saw ({what} differ)."
                )
        last = max((g for g, _, _ in expected), default=0)
        unexpected = sorted(set(g for g in records if g <= last) - {g for g, _, _ in expected})
        if unexpected:
            raise RunDirectoryError(
                f"{self.manifest_path} records generations {unexpected}, which the checkpoint did not see."
            )
