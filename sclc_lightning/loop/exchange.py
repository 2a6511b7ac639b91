"""The exchange of one sampling round between ranks: every rank leaves its share of the points
in the run folder, global rank zero gathers them in rank order.

It goes through the shared filesystem the run folder is on (one safetensors file per rank under
``<output_dir>/.exchange``, written atomically), not through ``torch.distributed``
collectives: measured on 2 CPU ranks (``benchmarks/exchange_cost.py``, ``docs/benchmarks.md``),
files were as fast or faster for every size (98 MB of 3×64×64 images: 134 ms against 304 ms for
``gather_object``), need no GPU memory for the transit on NCCL, and the run folder is shared
between nodes already. The ranks meet (``agree``) between writing and gathering.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from safetensors import safe_open
from safetensors.torch import save

from sclc_lightning._files import atomic_write
from sclc_lightning.items.codec import ItemCodec, SyntheticBatch
from sclc_lightning.items.real import RealData
from sclc_lightning.loop.sampling import agree
from sclc_lightning.store.synthetic import EXCHANGE_FOLDER

__all__ = ["Exchange"]


class Exchange:
    """The exchange of a run folder.

    Args:
        root: the run folder (shared by every rank).
        real: the real data (the conditions of the points' source items).
    """

    def __init__(self, root: Path, real: RealData) -> None:
        self.root, self.real = Path(root), real

    def note_path(self, generation: int, rank: int) -> Path:
        """Where rank ``rank`` describes the shards it wrote of ``generation`` (every rank writing
        its own share, :mod:`~sclc_lightning.loop.shares`)."""
        return self.root / EXCHANGE_FOLDER / f"gen_{generation:04d}_note_rank_{rank:05d}.json"

    def write_note(self, generation: int, rank: int, note: dict[str, Any]) -> None:
        """Leave rank ``rank``'s note (JSON) on its share of ``generation``."""
        path = self.note_path(generation, rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(note))

    def read_notes(self, generation: int, world_size: int) -> list[dict[str, Any]]:
        """Every rank's note on ``generation``, in rank order; the files are removed."""
        paths = [self.note_path(generation, rank) for rank in range(world_size)]
        notes = [json.loads(path.read_text()) for path in paths]
        for path in paths:
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # left only while a generation is under way
            paths[0].parent.rmdir()
        return notes

    def path(self, generation: int, part: int, rank: int) -> Path:
        """Where rank ``rank`` leaves its points of round ``part`` of ``generation``."""
        return self.root / EXCHANGE_FOLDER / f"gen_{generation:04d}_part_{part:03d}_rank_{rank:05d}.safetensors"

    def gather(
        self, trainer: pl.Trainer, local: SyntheticBatch | None, generation: int, part: int, error: BaseException | None
    ) -> SyntheticBatch | None:
        """Every rank's ``local`` points, in rank order, on global rank zero (``None`` on the
        others); with one process, ``local`` itself. ``error`` (this rank's sampling failed) is
        raised on every rank first.

        Raises:
            Exception: ``error`` of any rank, on every rank (:func:`~sclc_lightning.loop.sampling.agree`).
        """
        if trainer.world_size == 1:
            agree(trainer, error)
            return local
        if error is None and local is not None:
            try:
                self.write(generation, part, trainer.global_rank, local)
            except Exception as err:  # reported to every rank below
                error = err
        agree(trainer, error)
        return self.read(generation, part, trainer.world_size) if trainer.is_global_zero else None

    def write(self, generation: int, part: int, rank: int, batch: SyntheticBatch) -> None:
        """Leave rank ``rank``'s points of round ``part``."""
        path = self.path(generation, part, rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"data": batch.data.contiguous(), "source_index": batch.source_index.contiguous()}
        for key, values in (batch.fields or {}).items():
            tensors[ItemCodec.storage_name(key)] = values.contiguous()
        atomic_write(path, save(tensors))

    def read(self, generation: int, part: int, world_size: int) -> SyntheticBatch:
        """Every rank's points of round ``part``, in rank order, with the conditions of their
        source items; the files are removed."""
        paths = [self.path(generation, part, rank) for rank in range(world_size)]
        parts = []
        for path in paths:
            with safe_open(str(path), framework="pt") as handle:
                parts.append({name: handle.get_tensor(name) for name in handle.keys()})
        source = torch.cat([p["source_index"] for p in parts])
        generated = self.real.codec.generated_keys
        fields = {k: torch.cat([p[ItemCodec.storage_name(k)] for p in parts]) for k in generated} if generated else None
        batch = SyntheticBatch(torch.cat([p["data"] for p in parts]), source, self.real.conditions_of(source), fields)
        for path in paths:
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # left only while a round is under way
            paths[0].parent.rmdir()
        return batch
