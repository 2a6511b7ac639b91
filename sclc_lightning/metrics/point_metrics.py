"""A callback that evaluates a point-cloud model after every generation."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from typing_extensions import override

from sclc_lightning.loop import current_generation
from sclc_lightning.metrics._sampling import sample_across_ranks
from sclc_lightning.metrics.functional import frechet_distance, mmd_rbf, mode_statistics, moment_drift

__all__ = ["PointMetrics"]


def _first_field(batch: Any) -> Tensor:
    return batch if isinstance(batch, Tensor) else batch[0]


class PointMetrics(Callback):
    """Sample ``num_samples`` points after each generation and compare them with held-out data.

    Logs ``frechet``, ``mmd`` (Gaussian kernel), ``mean_drift`` and ``cov_drift`` against the
    DataModule's test split; for DataModules with mode ``centres``
    (eight Gaussians) also ``mode_coverage`` and ``mode_spread``. The number of samples is the
    same every generation and the draw is seeded by (seed, generation), so values are comparable.
    Under DDP the samples are shared out over the ranks and gathered; every rank computes the
    same values. ``time_evaluating_s`` logs how long the evaluation took.

    Args:
        num_samples: points sampled per evaluation.
        every: evaluate every ``every`` generations (and always at generation 0).
        mode_radius: a sample within this distance of a centre counts for that mode.
        batch_size: points per ``sample`` call.
        seed: seed of the evaluation draws.
    """

    def __init__(
        self, num_samples: int = 2000, every: int = 1, mode_radius: float = 0.5, batch_size: int = 10_000, seed: int = 0
    ) -> None:
        if num_samples < 2 or every < 1 or batch_size < 1:
            raise ValueError(
                f"`num_samples` must be >= 2, `every` and `batch_size` >= 1, got {num_samples}, {every}, {batch_size}."
            )
        self.num_samples, self.every, self.mode_radius, self.seed = num_samples, every, mode_radius, seed
        self.batch_size = batch_size
        self._reference: Tensor | None = None

    def _held_out(self, trainer: pl.Trainer) -> Tensor:
        if self._reference is None:
            datamodule = trainer.datamodule  # type: ignore[attr-defined]
            if datamodule is None or not hasattr(datamodule, "test_dataloader"):
                raise ValueError("PointMetrics needs a DataModule with a `test_dataloader` (held-out data).")
            self._reference = torch.cat([_first_field(b) for b in datamodule.test_dataloader()])
        return self._reference

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        generation = current_generation(trainer)
        if generation % self.every:
            return
        start = time.perf_counter()
        reference = self._held_out(trainer)
        samples = sample_across_ranks(
            trainer,
            pl_module,
            self.num_samples,
            seed=self.seed,
            stream=generation,
            batch_size=self.batch_size,
            desc=f"Evaluating generation {generation}",
        )
        metrics = {"frechet": frechet_distance(samples, reference), "mmd": mmd_rbf(samples, reference)}
        metrics["mean_drift"], metrics["cov_drift"] = moment_drift(samples, reference)
        centres = getattr(trainer.datamodule, "centres", None)  # type: ignore[attr-defined]
        if isinstance(centres, Tensor):
            metrics["mode_coverage"], metrics["mode_spread"] = mode_statistics(samples, centres, self.mode_radius)
        metrics["time_evaluating_s"] = time.perf_counter() - start
        pl_module.log_dict(metrics, on_step=False, on_epoch=True)
        rank_zero_info(
            f"PointMetrics: generation {generation} evaluated on {self.num_samples} samples in"
            f" {metrics['time_evaluating_s']:.1f} s (frechet {metrics['frechet']:.4g})."
        )
