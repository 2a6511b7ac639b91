"""``metrics.csv``: one row per generation, for reports and grids."""

from __future__ import annotations

import csv
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from sclc_lightning._trainer import current_generation, find_loop

__all__ = ["GenerationCSV"]


def _scalar(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # tensors with several values, strings
        return None


class GenerationCSV(Callback):
    """Write ``metrics.csv`` in the run directory: a ``generation`` column, the loop's
    per-generation record and every scalar metric logged during that generation.

    A generation's row is written once its epoch-level metrics are final (at the start of the
    next generation and at the end of the fit). On resume, rows of the generations trained
    again are replaced.

    Args:
        path: the CSV file; default ``<trainer.default_root_dir>/metrics.csv``.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._pending: int | None = None

    def _target(self, trainer: pl.Trainer) -> Path:
        return self.path or Path(trainer.default_root_dir) / "metrics.csv"

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._pending = current_generation(trainer)

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)

    def _flush(self, trainer: pl.Trainer) -> None:
        if self._pending is None:
            return
        # By now every callback's epoch-end hook has run, whatever the order of callbacks.
        loop = find_loop(trainer)
        records = [asdict(r) for r in (loop.history if loop is not None else []) if r.generation == self._pending]
        row: dict[str, Any] = records[-1] if records else {"generation": self._pending}
        self._pending = None
        for key, value in trainer.callback_metrics.items():
            number = _scalar(value)
            if number is not None and key not in row:
                row[key] = number
        if not trainer.is_global_zero:
            return
        path = self._target(trainer)
        rows = []
        if path.exists():
            with open(path, newline="") as handle:
                rows = [r for r in csv.DictReader(handle) if int(float(r["generation"])) < int(row["generation"])]
        rows.append(row)
        columns = ["generation", *sorted({k for r in rows for k in r} - {"generation"})]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
