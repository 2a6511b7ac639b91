"""Synthetic data on disk: one folder per generation of safetensors shards and a JSON manifest.

Layout under ``root``::

    manifest.json              # run id, configuration, one record per generation
    gen_0001/shard_00000.safetensors
    gen_0001/strings.json      # only when items carry string fields (prompts)
    gen_0002/...

A generation folder is written under a temporary name and renamed when complete; the manifest
is replaced atomically after that. Nothing is ever unpickled: tensors come from safetensors,
the rest from JSON. Shards are read lazily, one row at a time, through memory-mapped
``safe_open`` handles, so serving older generations costs no memory.
"""

from __future__ import annotations

import bisect
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor
from torch.utils.data import Dataset

from sclc_lightning.data.items import ItemCodec

__all__ = ["SyntheticSet", "SyntheticStore"]

MANIFEST_FORMAT = 1


def _atomic_write_json(path: Path, payload: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, path)


class SyntheticSet(Dataset[Any]):
    """The synthetic items of one generation, read lazily from its shards.

    Args:
        folder: the generation's folder.
        shards: ``(file name, rows)`` of each shard, in order.
        codec: rebuilds items with the structure of the real ones.
    """

    def __init__(self, folder: Path, shards: list[tuple[str, int]], codec: ItemCodec):
        self.folder = Path(folder)
        self.shards = shards
        self.codec = codec
        self._ends = torch.tensor([rows for _, rows in shards], dtype=torch.int64).cumsum(0).tolist()
        strings_path = self.folder / "strings.json"
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

    def _shard_slices(self, shard: int) -> dict[str, Any]:
        """Memory-mapped slices of the data and field tensors of one shard, opened once."""
        if self._pid != os.getpid() or shard not in self._slices:
            handle = self._handle(shard)
            names = [n for n in handle.keys() if n == "data" or n.startswith("field.")]
            self._slices[shard] = {name: handle.get_slice(name) for name in names}
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
    """Reads and writes a run's synthetic generations under ``root``."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest, or ``None`` when there is none yet."""
        if not self.manifest_path.exists():
            return None
        manifest: dict[str, Any] = json.loads(self.manifest_path.read_text())
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(
                f"{self.manifest_path} has manifest format {manifest.get('format')!r};"
                f" this version reads format {MANIFEST_FORMAT}."
            )
        return manifest

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Replace the manifest atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write_json(self.manifest_path, {**manifest, "format": MANIFEST_FORMAT})

    @staticmethod
    def folder_name(generation: int) -> str:
        return f"gen_{generation:04d}"

    def write_generation(
        self,
        generation: int,
        tensors: Mapping[str, Tensor],
        strings: Mapping[str, list[str]],
        shard_rows: int,
    ) -> list[tuple[str, int]]:
        """Write one generation's tensors (first dimension = item) atomically.

        Returns:
            ``(file name, rows)`` of each shard written.
        """
        count = int(next(iter(tensors.values())).shape[0])
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / self.folder_name(generation)
        tmp = self.root / f".{final.name}.tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        shards: list[tuple[str, int]] = []
        try:
            for index, start in enumerate(range(0, max(count, 1), shard_rows)):
                # clone: safetensors refuses tensors that share memory (views of one buffer)
                rows = {name: t[start : start + shard_rows].clone() for name, t in tensors.items()}
                name = f"shard_{index:05d}.safetensors"
                save_file(rows, str(tmp / name))
                shards.append((name, int(rows["data"].shape[0])))
            if strings:
                (tmp / "strings.json").write_text(json.dumps(dict(strings)))
            if final.exists():
                stale = self.root / f".{final.name}.stale-{uuid.uuid4().hex}"
                os.replace(final, stale)
                os.replace(tmp, final)
                shutil.rmtree(stale, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return shards

    def open_generation(self, generation: int, shards: list[tuple[str, int]], codec: ItemCodec) -> SyntheticSet:
        """The lazily read dataset of one generation."""
        return SyntheticSet(self.root / self.folder_name(generation), shards, codec)

    def exchange_path(self, generation: int, rank: int) -> Path:
        """Where rank ``rank`` leaves its raw samples for rank 0 (multi-process runs)."""
        return self.root / ".exchange" / f"gen_{generation:04d}_rank_{rank:05d}.safetensors"

    def write_exchange(self, generation: int, rank: int, tensors: Mapping[str, Tensor]) -> None:
        path = self.exchange_path(generation, rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, path)

    def read_exchange(self, generation: int, rank: int) -> dict[str, Tensor]:
        with safe_open(str(self.exchange_path(generation, rank)), framework="pt") as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}

    def clear_exchange(self, generation: int, world_size: int) -> None:
        for rank in range(world_size):
            self.exchange_path(generation, rank).unlink(missing_ok=True)
