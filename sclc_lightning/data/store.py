"""Synthetic data on disk: one folder per generation of safetensors shards and a JSON manifest.

:class:`SyntheticStore` is the only code that knows this format. Layout under ``root``::

    manifest.json              # run id, configuration, item structure, one record per generation
    gen_0001/shard_00000.safetensors   # tensors "data", "source_index", "field.<key>"
    gen_0001/strings.json      # only when items carry string fields (prompts)
    gen_0002/...
    .exchange/                 # multi-process runs: each rank's raw samples, until rank 0 writes

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor
from torch.utils.data import Dataset

from sclc_lightning.data.items import ItemCodec, SyntheticBatch
from sclc_lightning.data.real import RealData

__all__ = ["Manifest", "StoredGeneration", "SyntheticSet", "SyntheticStore"]

MANIFEST_FORMAT = 1


def _manifest_text(payload: Mapping[str, Any]) -> str:
    """JSON with one line per top-level entry and per generation record: readable, and written
    by the C encoder (``indent`` would select Python's slower one, which a long run calls every
    generation on a growing manifest)."""
    lines = []
    for key, value in sorted(payload.items()):
        if key == "generations":
            records = ",\n".join(f"    {json.dumps(r, sort_keys=True)}" for r in value)
            lines.append(f'  "generations": [\n{records}\n  ]' if records else '  "generations": []')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, sort_keys=True)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    tmp.write_text(text)
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


@dataclass(frozen=True)
class StoredGeneration:
    """The manifest's record of one generation on disk.

    Attributes:
        generation: the generation that trains on these items.
        count: the number of items.
        shards: ``(file name, rows)`` of each shard, in order.
        sampled_at_step: the global step of the model that sampled them.
        settings: the loop's settings fingerprint when they were made; a resumed run reuses
            them only when its own is the same.
        seconds_sampling: time spent sampling.
        seconds_correcting: time spent correcting.
    """

    generation: int
    count: int
    shards: tuple[tuple[str, int], ...]
    sampled_at_step: int
    settings: dict[str, Any]
    seconds_sampling: float
    seconds_correcting: float

    def to_json(self) -> dict[str, Any]:
        """The JSON record, with the mode, λ, corrector, strength and seed spelled out for readers."""
        corrector = self.settings.get("corrector")
        return {
            "generation": self.generation,
            "count": self.count,
            "shards": [[name, rows] for name, rows in self.shards],
            "sampled_at_step": self.sampled_at_step,
            "fingerprint": self.settings,
            "seconds_sampling": self.seconds_sampling,
            "seconds_correcting": self.seconds_correcting,
            "mode": self.settings.get("mode"),
            "synthetic_fraction": self.settings.get("synthetic_fraction"),
            "corrector": corrector["name"] if isinstance(corrector, dict) else None,
            "strength": corrector["strength"] if isinstance(corrector, dict) else 0.0,
            "seed": self.settings.get("seed"),
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> StoredGeneration:
        """Inverse of :meth:`to_json`."""
        return cls(
            generation=int(record["generation"]),
            count=int(record["count"]),
            shards=tuple((str(name), int(rows)) for name, rows in record["shards"]),
            sampled_at_step=int(record["sampled_at_step"]),
            settings=dict(record.get("fingerprint") or {}),
            seconds_sampling=float(record["seconds_sampling"]),
            seconds_correcting=float(record["seconds_correcting"]),
        )


@dataclass(frozen=True)
class Manifest:
    """A run's ``manifest.json``: its id, configuration, item structure and generations.

    Attributes:
        run_id: the run that owns the folder.
        config: the loop's configuration, for readers.
        item: the structure of the items (:meth:`ItemCodec.to_json`).
        generations: one record per generation on disk, in order.
    """

    run_id: str
    config: dict[str, Any]
    item: dict[str, Any]
    generations: tuple[StoredGeneration, ...] = ()

    def records(self) -> dict[int, StoredGeneration]:
        """The records by generation."""
        return {record.generation: record for record in self.generations}

    def with_generation(self, record: StoredGeneration) -> Manifest:
        """This manifest with ``record`` as its last generation: records of the same and later
        generations came from a history that is being redone and are dropped."""
        kept = tuple(r for r in self.generations if r.generation < record.generation)
        return Manifest(self.run_id, self.config, self.item, (*kept, record))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "run_id": self.run_id,
            "config": self.config,
            "item": self.item,
            "generations": [record.to_json() for record in self.generations],
        }

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> Manifest:
        return cls(
            str(payload["run_id"]),
            dict(payload.get("config") or {}),
            dict(payload.get("item") or {}),
            tuple(StoredGeneration.from_json(r) for r in payload.get("generations", [])),
        )


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
        >>> record.shards, float(store.open_generation(record, real.codec)[2])
        ((('shard_00000.safetensors', 2), ('shard_00001.safetensors', 1)), 7.0)
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @staticmethod
    def folder_name(generation: int) -> str:
        """The folder of generation ``generation``: ``gen_0001``."""
        return f"gen_{generation:04d}"

    # -- the manifest ------------------------------------------------------------------------
    def read_manifest(self) -> Manifest | None:
        """The manifest, or ``None`` when there is none yet."""
        if not self.manifest_path.exists():
            return None
        payload: dict[str, Any] = json.loads(self.manifest_path.read_text())
        if payload.get("format") != MANIFEST_FORMAT:
            raise ValueError(
                f"{self.manifest_path} has manifest format {payload.get('format')!r};"
                f" this version reads format {MANIFEST_FORMAT}."
            )
        return Manifest.from_json(payload)

    def write_manifest(self, manifest: Manifest) -> None:
        """Replace the manifest atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(self.manifest_path, _manifest_text(manifest.to_json()))

    def create(self, run_id: str, config: Mapping[str, Any], codec: ItemCodec) -> Manifest:
        """Start the manifest of a new run (no generations yet)."""
        manifest = Manifest(run_id, dict(config), codec.to_json())
        self.write_manifest(manifest)
        return manifest

    def records(self) -> dict[int, StoredGeneration]:
        """The generations on disk, by generation (none without a manifest)."""
        manifest = self.read_manifest()
        return {} if manifest is None else manifest.records()

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
    ) -> StoredGeneration:
        """Store one generation's items and add its record to the manifest.

        Each synthetic item keeps the other fields (labels, prompts, ...) of its source real
        item ``batch.source_index``. The folder is complete before the manifest names it.

        Raises:
            FileNotFoundError: the run has no manifest (:meth:`create` first).
        """
        manifest = self.read_manifest()
        if manifest is None:
            raise FileNotFoundError(f"{self.manifest_path} is missing; the store of a run starts with `create`.")
        codec = real.codec
        fields, strings = codec.encode_fields(real.items(batch.source_index.tolist())) if codec.other_keys else ({}, {})
        tensors = {"data": batch.data, "source_index": batch.source_index.to(torch.int64), **fields}
        shards = self._write_folder(generation, tensors, strings, shard_rows)
        record = StoredGeneration(
            generation=generation,
            count=len(batch),
            shards=tuple(shards),
            sampled_at_step=sampled_at_step,
            settings=json.loads(json.dumps(dict(settings))),  # stored as read back
            seconds_sampling=seconds_sampling,
            seconds_correcting=seconds_correcting,
        )
        self.write_manifest(manifest.with_generation(record))
        return record

    def _write_folder(
        self, generation: int, tensors: Mapping[str, Tensor], strings: Mapping[str, list[str]], shard_rows: int
    ) -> list[tuple[str, int]]:
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

    def open_generation(self, record: StoredGeneration, codec: ItemCodec) -> SyntheticSet:
        """The lazily read dataset of one generation."""
        return SyntheticSet(self.root / self.folder_name(record.generation), list(record.shards), codec)

    # -- the exchange between ranks ------------------------------------------------------------
    def exchange_path(self, generation: int, rank: int) -> Path:
        """Where rank ``rank`` leaves its raw samples for rank 0 (multi-process runs)."""
        return self.root / ".exchange" / f"{self.folder_name(generation)}_rank_{rank:05d}.safetensors"

    def write_exchange(self, generation: int, rank: int, batch: SyntheticBatch) -> None:
        """Leave this rank's share of generation ``generation``'s raw samples."""
        path = self.exchange_path(generation, rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
        tensors = {"data": batch.data.contiguous(), "source_index": batch.source_index.contiguous()}
        save_file(tensors, str(tmp))
        os.replace(tmp, path)

    def gather_exchange(self, generation: int, world_size: int, real: RealData) -> SyntheticBatch:
        """Every rank's share, in rank order, with the conditions of their source items; the
        exchange files are removed."""
        parts = []
        for rank in range(world_size):
            with safe_open(str(self.exchange_path(generation, rank)), framework="pt") as handle:
                parts.append({name: handle.get_tensor(name) for name in handle.keys()})
        source = torch.cat([p["source_index"] for p in parts])
        batch = SyntheticBatch(torch.cat([p["data"] for p in parts]), source, real.conditions_of(source))
        for rank in range(world_size):
            self.exchange_path(generation, rank).unlink(missing_ok=True)
        return batch
