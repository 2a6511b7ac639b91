"""What the loop did in each generation: counts and durations, collected while the generation
runs (:class:`GenerationProgress`) and kept as one :class:`GenerationRecord` per generation."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info

from sclc_lightning._files import atomic_write

__all__ = ["HISTORY_FILE", "GenerationProgress", "GenerationRecord", "HistoryFile", "log_settings", "read_history"]

#: The records of a run's generations, in its synthetic data folder.
HISTORY_FILE = "history.json"


@dataclass
class GenerationRecord:
    """What the loop did in one generation (also logged to the trainer's loggers).

    Examples:
        >>> record = GenerationRecord(1, num_real=100, num_synthetic=50, num_trained=300,
        ...                           time_sampling_s=0.4, time_correcting_s=0.1, time_training_s=2.0)
        >>> record.num_synthetic / (record.num_real + record.num_synthetic)
        0.3333333333333333
    """

    generation: int
    num_real: int
    num_synthetic: int
    num_trained: int
    time_sampling_s: float
    time_correcting_s: float
    time_training_s: float

    def log(self, trainer: pl.Trainer, history: HistoryFile | None = None) -> None:
        """Send the record to every logger (global rank zero), add it to the run's ``history``
        file (:func:`read_history`) and say it in the log."""
        if trainer.is_global_zero:
            if history is not None:
                history.add(self)
            # Straight to the loggers, as LearningRateMonitor does: one row per generation at
            # the current step, without the cost of `LightningModule.log` bookkeeping.
            metrics = {k: float(v) for k, v in asdict(self).items()}
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
        rank_zero_info(
            f"SelfConsumingLoop: generation {self.generation} trained on {self.num_trained} samples from"
            f" {self.num_real} real + {self.num_synthetic} synthetic items in {self.time_training_s:.1f} s."
        )


@dataclass
class GenerationProgress:
    """Counts and clocks of the generation being trained; validation time is kept out of the
    training time."""

    num_real: int = 0
    num_synthetic: int = 0
    num_trained: int = 0
    #: Batches the generation's loader serves each rank, and their size; ``batches`` is how
    #: many this rank has trained (a generation cut short by ``max_steps`` trains fewer).
    planned_batches: int = 0
    batch_size: int = 0
    world_size: int = 1
    batches: int = 0
    time_sampling_s: float = 0.0
    time_correcting_s: float = 0.0
    validation_s: float = 0.0
    _train_start: float | None = None
    _validation_start: float | None = None

    def start_training(self) -> None:
        self._train_start = time.perf_counter()
        self.validation_s = 0.0

    def start_validation(self) -> None:
        self._validation_start = time.perf_counter()

    def end_validation(self) -> None:
        if self._validation_start is not None:
            self.validation_s += time.perf_counter() - self._validation_start
            self._validation_start = None

    def finish(self, generation: int) -> GenerationRecord:
        """The record of ``generation``, whose training ends now."""
        start = self._train_start
        training_s = 0.0 if start is None else time.perf_counter() - start - self.validation_s
        trained = self.num_trained
        if self.batches < self.planned_batches:  # cut short: whole batches on every rank
            trained = self.batches * self.batch_size * self.world_size
        return GenerationRecord(
            generation=generation,
            num_real=self.num_real,
            num_synthetic=self.num_synthetic,
            num_trained=trained,
            time_sampling_s=self.time_sampling_s,
            time_correcting_s=self.time_correcting_s,
            time_training_s=training_s,
        )


def log_settings(trainer: pl.Trainer, settings: dict[str, Any]) -> None:
    """Give every logger the loop's settings as hyperparameters, under ``sclc/`` (W&B's config,
    ``hparams.yaml``), so that runs can be filtered by λ, mode, corrector and budgets."""
    flat = {f"sclc/{key}": value for key, value in settings.items()}
    for logger in trainer.loggers:
        logger.log_hyperparams(flat)


class HistoryFile:
    """``folder/history.json`` for one fit: read once (the records of the fits before it), then
    rewritten at each generation's end from memory, each record encoded once (the file is a JSON
    list of small records: rewriting it costs little next to a generation, even after
    thousands)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / HISTORY_FILE
        self._rows: list[tuple[int, str]] | None = None  # (generation, the record as JSON)

    def add(self, record: GenerationRecord) -> None:
        """Write ``record`` in place of the records of its generation and later ones (a resumed
        run trains them again)."""
        if self._rows is None:
            self._rows = [(int(row["generation"]), json.dumps(row)) for row in _read_rows(self.path)]
        self._rows = [row for row in self._rows if row[0] < record.generation]
        self._rows.append((record.generation, json.dumps(asdict(record))))
        atomic_write(self.path, "[" + ", ".join(text for _, text in self._rows) + "]")


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a generation history written by the loop: {err}") from err
    return list(rows)


def read_history(folder: str | os.PathLike[str] | None) -> list[GenerationRecord]:
    """The records a run wrote to its synthetic data folder, one per generation trained
    (``[]`` when there are none): what ``loop.history`` holds in the process that trained,
    readable from any other (the parent process of ``ddp_spawn``, a notebook).

    Raises:
        ValueError: the file is not a history written by the loop.
    """
    if folder is None:
        return []
    path = Path(folder) / HISTORY_FILE
    try:
        return [GenerationRecord(**row) for row in _read_rows(path)]
    except TypeError as err:
        raise ValueError(f"{path} is not a generation history written by the loop: {err}") from err
