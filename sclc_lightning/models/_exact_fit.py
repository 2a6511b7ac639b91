"""Base of the models whose "training" is a closed-form fit on a generation's whole training set
(a Gaussian's mean and covariance, least squares, a mixture fitted by EM).

Every training batch adds to running statistics; at the generation's last batch
:meth:`ExactFitModule.fit` sets the model from them. The fits are cheap and run in one process
(with several, the module refuses to start: DDP needs gradient-trained parameters). The running
statistics are kept in checkpoints, so a fit stopped within a generation (preemption) resumes
with every batch it had already seen.
"""

from __future__ import annotations

import abc
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

__all__ = ["ExactFitModule"]

_STATS_KEY = "sclc_exact_fit_statistics"


class ExactFitModule(pl.LightningModule, abc.ABC):
    """A LightningModule fitted in closed form at the end of each generation.

    Subclasses implement :meth:`batch_statistics` and :meth:`fit`. Statistics are combined over
    batches by summing (``combine = "sum"``) or by concatenating along the first dimension
    (``combine = "concat"``, for fits that need the points themselves).
    """

    combine: str = "sum"

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self._stats: list[Tensor] | None = None

    @staticmethod
    def first_tensor(batch: Any) -> Tensor:
        """The batch itself, or its first tensor field (tuple/list/dict batches)."""
        if isinstance(batch, Tensor):
            return batch
        if isinstance(batch, dict):
            return next(v for v in batch.values() if isinstance(v, Tensor))
        first: Tensor = batch[0]
        return first

    @abc.abstractmethod
    def batch_statistics(self, batch: Any) -> list[Tensor]:
        """The statistics of one training batch."""

    @abc.abstractmethod
    def fit(self, statistics: list[Tensor]) -> dict[str, float]:
        """Set the model from the statistics of the whole generation; return metrics to log."""

    def training_step(self, batch: Any, batch_idx: int) -> None:
        stats = [s.detach() for s in self.batch_statistics(batch)]
        if self._stats is None:
            self._stats = stats
        elif self.combine == "sum":
            self._stats = [a + b for a, b in zip(self._stats, stats)]
        else:
            self._stats = [torch.cat([a, b]) for a, b in zip(self._stats, stats)]
        # Fit at the last batch rather than in `on_train_epoch_end`, which runs after the
        # callbacks' hooks: a generation's metrics then see the model it produced.
        if self.trainer.is_last_batch:
            self._fit_generation()

    def setup(self, stage: str) -> None:
        if self.trainer.world_size > 1:
            raise ValueError(
                f"{type(self).__name__} is fitted in closed form in one process; run it with devices=1"
                " (DDP needs parameters that train by gradients, and the fit does not need several"
                " processes)."
            )

    def _fit_generation(self) -> None:
        assert self._stats is not None
        metrics = self.fit(self._stats)
        self._stats = None
        # One optimizer step per generation: the closed-form fit is the update, and the step
        # makes Lightning count it (global step, checkpoint cadence, stop requests).
        optimizer = self.optimizers()
        assert not isinstance(optimizer, list)
        optimizer.step()
        if metrics:
            self.log_dict(metrics, on_step=False, on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # Zero learning rate and no gradients: `step` changes nothing, the fit does. Models
        # without parameters get a placeholder so that Lightning has an optimizer to step.
        params = list(self.parameters()) or [torch.nn.Parameter(torch.zeros(()), requires_grad=False)]
        return torch.optim.SGD(params, lr=0.0)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._stats is not None:  # a stop within a generation keeps what it has seen so far
            checkpoint[_STATS_KEY] = [t.cpu() for t in self._stats]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved: list[Tensor] | None = checkpoint.get(_STATS_KEY)
        self._stats = None if saved is None else [t.to(self.device) for t in saved]
