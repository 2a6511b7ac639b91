"""What the loop did in each generation: counts and durations, collected while the generation
runs (:class:`GenerationProgress`) and kept as one :class:`GenerationRecord` per generation."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info

from sclc_lightning._files import atomic_write, read_regular

__all__ = ["HISTORY_FILE", "GenerationProgress", "GenerationRecord", "HistoryFile", "log_settings", "read_history"]

#: The records of a run's generations, in its synthetic data folder: one JSON object per line.
HISTORY_FILE = "history.jsonl"
#: Where runs of earlier versions kept them (a JSON list), still read.
LEGACY_HISTORY_FILE = "history.json"


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
    #: What the corrector measured while making this generation's data (``reward_mean``,
    #: ``acceptance_rate``, ``oversampling``, ...), recorded with it in the manifest.
    statistics: dict[str, float] = field(default_factory=dict)

    def as_row(self) -> dict[str, int | float]:
        """The record as one flat row of numbers: its fields and its statistics.

        Examples:
            >>> GenerationRecord(1, 0, 5, 5, 0.0, 0.0, 0.1, {"acceptance_rate": 0.5}).as_row()["acceptance_rate"]
            0.5
        """
        row: dict[str, int | float] = {k: v for k, v in asdict(self).items() if k != "statistics"}
        row.update({k: float(v) for k, v in self.statistics.items() if k not in row})
        return row

    def log(self, trainer: pl.Trainer, history: HistoryFile | None = None) -> None:
        """Send the record to every logger (global rank zero), add it to the run's ``history``
        file (:func:`read_history`) and say it in the log."""
        if trainer.is_global_zero:
            if history is not None:
                history.add(self)
            # Straight to the loggers, as LearningRateMonitor does: one row per generation at
            # the current step, without the cost of `LightningModule.log` bookkeeping.
            metrics = {k: float(v) for k, v in self.as_row().items()}
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
    statistics: dict[str, float] = field(default_factory=dict)
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
            statistics=dict(self.statistics),
        )


def log_settings(trainer: pl.Trainer, settings: dict[str, Any]) -> None:
    """Give every logger the loop's settings as hyperparameters, under ``sclc/`` (W&B's config,
    ``hparams.yaml``), so that runs can be filtered by λ, mode, corrector and budgets."""
    flat = {f"sclc/{key}": value for key, value in settings.items()}
    for logger in trainer.loggers:
        logger.log_hyperparams(flat)


class HistoryFile:
    """``folder/history.jsonl`` for one fit, one record per line: read and rewritten once, when
    the fit adds its first record (dropping the records of generations it trains again), then one
    line appended (and ``fsync``-ed) per generation, so that a generation costs the same after
    thousands. A line cut short by a crash is dropped when read."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / HISTORY_FILE
        self._last: int | None = None  # the generation of the last record written by this fit

    def add(self, record: GenerationRecord) -> None:
        """Write ``record`` in place of the records of its generation and later ones (a resumed
        run trains them again)."""
        line = json.dumps(asdict(record)) + "\n"
        if self._last is not None and record.generation > self._last and self.path.is_file():
            handle = os.open(self.path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0))
            try:
                os.write(handle, line.encode())
                os.fsync(handle)
            finally:
                os.close(handle)
        else:
            kept = [row for row in _read_rows(self.path.parent) if row["generation"] < record.generation]
            atomic_write(self.path, "".join(json.dumps(row) + "\n" for row in kept) + line)
            (self.path.parent / LEGACY_HISTORY_FILE).unlink(missing_ok=True)  # now in history.jsonl
        self._last = record.generation


def _read_rows(folder: Path) -> list[dict[str, Any]]:
    """The records in ``folder``'s history (``history.jsonl``, else an earlier version's
    ``history.json``); a last line cut short by a crash is dropped."""
    path = folder / HISTORY_FILE
    if not path.is_file():
        legacy = folder / LEGACY_HISTORY_FILE
        if not legacy.is_file():
            return []
        try:
            return list(json.loads(read_regular(legacy)))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{legacy} is not a generation history written by the loop: {err}") from err
    text = read_regular(path).decode()
    lines = text.split("\n")[:-1]  # the text after the last newline: a line cut short, or nothing
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except ValueError as err:
            raise ValueError(f"{path}: line {number} is not a record written by the loop: {err}") from err
        if not isinstance(row, dict) or not isinstance(row.get("generation"), int):
            raise ValueError(f"{path}: line {number} is not a record written by the loop.")
        rows.append(row)
    return rows


def read_history(folder: str | os.PathLike[str] | None) -> list[GenerationRecord]:
    """The records a run wrote to its synthetic data folder, one per generation trained
    (``[]`` when there are none): what ``loop.history`` holds in the process that trained,
    readable from any other (the parent process of ``ddp_spawn``, a notebook).

    Raises:
        ValueError: the file is not a history written by the loop.
    """
    if folder is None:
        return []
    try:
        return [GenerationRecord(**row) for row in _read_rows(Path(folder))]
    except TypeError as err:
        raise ValueError(
            f"{Path(folder) / HISTORY_FILE} is not a generation history written by the loop: {err}"
        ) from err
