"""``metrics.csv``: one row per generation, for reports and grids."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from sclc_lightning._checks import plain_numbers
from sclc_lightning._files import atomic_path, file_version
from sclc_lightning._trainer import GenerationEndListener, current_generation, find_loop, settle_producers

__all__ = ["GenerationCSV"]


def _scalar(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # tensors with several values, strings
        return None


@plain_numbers
class GenerationCSV(GenerationEndListener, Callback):
    """Write ``metrics.csv`` in the run directory: a ``generation`` column, the loop's
    per-generation record and every scalar metric logged during that generation.

    A generation's row is written once its epoch-level metrics are final: when the loop tells
    that the generation is over, before it samples the next one (or at the next epoch's start,
    or the end of the fit). The row is also kept in the checkpoint saved at the generation's end,
    and a resumed fit writes it if the file lacks it, so that after any crash and resume the file
    has exactly one row per completed generation. Rows of generations trained again are replaced.

    Args:
        path: the CSV file; default ``<trainer.default_root_dir>/metrics.csv``.

    Examples:
        >>> import lightning.pytorch as pl
        >>> from sclc_lightning import GenerationCSV, SelfConsumingLoop
        >>> trainer = pl.Trainer(callbacks=[SelfConsumingLoop(synthetic_fraction=1.0, generations=3), GenerationCSV()],
        ...                      logger=False, enable_progress_bar=False)
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._pending: int | None = None
        self._trainer: pl.Trainer | None = None
        self._restored: dict[str, Any] | None = None
        # the file as this callback last wrote it: (path, its version, columns, last generation)
        self._written: tuple[Path, tuple[int, int, int, int], list[str], int] | None = None

    def _target(self, trainer: pl.Trainer) -> Path:
        return self.path or Path(trainer.default_root_dir) / "metrics.csv"

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer, self._pending = trainer, None

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._restored is not None:  # the row the checkpoint kept, in case the file lacks it
            self._write(trainer, self._restored)
            self._restored = None

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._pending = current_generation(trainer)

    def on_generation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> None:
        self._flush(trainer)

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)

    @override
    def state_dict(self) -> dict[str, Any]:
        # Saved at the generation's end (the checkpoint callbacks run after every other epoch-end
        # hook): the pending row is complete.
        row = self._row(self._trainer) if self._pending is not None and self._trainer is not None else None
        return {"row": row}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored = state_dict.get("row")

    def _row(self, trainer: pl.Trainer) -> dict[str, Any]:
        settle_producers(trainer)  # metrics computed from the generation's final ones (a monitor's)
        generation = self._pending
        loop = find_loop(trainer)
        history = loop.history if loop is not None else []
        record = next((r for r in reversed(history) if r.generation == generation), None)  # the latest, at the end
        row: dict[str, Any] = record.as_row() if record is not None else {"generation": generation}
        for key, value in trainer.callback_metrics.items():
            number = _scalar(value)
            if number is not None and key not in row:
                row[key] = number
        return row

    def _flush(self, trainer: pl.Trainer) -> None:
        if self._pending is None:
            return
        row = self._row(trainer)
        self._pending = None
        self._write(trainer, row)

    def _write(self, trainer: pl.Trainer, row: dict[str, Any]) -> None:
        if not trainer.is_global_zero:
            return
        path = self._target(trainer)
        if self._append(path, row):
            return
        rows = []
        if path.exists():
            with open(path, newline="") as handle:
                rows = [r for r in csv.DictReader(handle) if int(float(r["generation"])) < int(row["generation"])]
        rows.append(row)
        columns = ["generation", *sorted({k for r in rows for k in r} - {"generation"})]
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        self._written = (path, file_version(path), columns, int(row["generation"]))

    def _append(self, path: Path, row: dict[str, Any]) -> bool:
        """Add ``row`` at the end of the file in one write, when the file is as this callback left
        it, the row's generation comes next and it has no new column: the cost of a generation
        then does not grow with the run (the file is rewritten whole otherwise). Whether it did."""
        if self._written is None or self._written[0] != path:
            return False
        _, version, columns, last = self._written
        try:
            unchanged = file_version(path) == version
        except OSError:
            return False
        if not unchanged or int(row["generation"]) <= last or not set(row) <= set(columns):
            return False
        line = io.StringIO()
        csv.DictWriter(line, fieldnames=columns).writerow(row)
        handle = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(handle, line.getvalue().encode())
            os.fsync(handle)
        finally:
            os.close(handle)
        self._written = (path, file_version(path), columns, int(row["generation"]))
        return True
