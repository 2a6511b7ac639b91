"""A callback that evaluates a point-cloud model after every generation."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from typing_extensions import override

from sclc_lightning.data.budget import make_generator
from sclc_lightning.loop import current_generation, eval_mode
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

    Args:
        num_samples: points sampled per evaluation.
        every: evaluate every ``every`` generations (and always at generation 0).
        mode_radius: a sample within this distance of a centre counts for that mode.
        seed: seed of the evaluation draws.
    """

    def __init__(self, num_samples: int = 2000, every: int = 1, mode_radius: float = 0.5, seed: int = 0) -> None:
        if num_samples < 2 or every < 1:
            raise ValueError(f"`num_samples` must be >= 2 and `every` >= 1, got {num_samples} and {every}.")
        self.num_samples, self.every, self.mode_radius, self.seed = num_samples, every, mode_radius, seed
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
        reference = self._held_out(trainer)
        with eval_mode(pl_module):
            generator = make_generator(self.seed, "sample", 10_000 + generation)
            samples = pl_module.sample(self.num_samples, generator=generator).detach().cpu()  # type: ignore[operator]
        metrics = {"frechet": frechet_distance(samples, reference), "mmd": mmd_rbf(samples, reference)}
        metrics["mean_drift"], metrics["cov_drift"] = moment_drift(samples, reference)
        centres = getattr(trainer.datamodule, "centres", None)  # type: ignore[attr-defined]
        if isinstance(centres, Tensor):
            metrics["mode_coverage"], metrics["mode_spread"] = mode_statistics(samples, centres, self.mode_radius)
        pl_module.log_dict(metrics, on_step=False, on_epoch=True)
