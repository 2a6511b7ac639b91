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
    """A LightningModule fitted in closed form at the end of each generation: the base of your
    own exactly fitted model (docs/own_model.md).

    Subclasses implement :meth:`batch_statistics` and :meth:`fit` (and a sampler, ``sample``).
    Statistics are combined over batches by summing (``combine = "sum"``) or by concatenating
    along the first dimension (``combine = "concat"``, for fits that need the points
    themselves). The fit runs at the generation's last batch, so that the generation's metrics
    and checkpoint see the model it produced; it counts as one optimizer step (a zero-rate SGD
    step: ``trainer.global_step`` advances once per generation and ModelCheckpoint writes each
    generation). Statistics seen before a stop within a generation are kept in the checkpoint.
    :class:`~sclc_lightning.correctors.model.NeonCorrector` refits such a model in closed form
    with the same two methods.

    Examples:
        >>> import torch
        >>> class MeanModel(ExactFitModule):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.mean = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
        ...     def batch_statistics(self, batch):
        ...         x = self.first_tensor(batch)
        ...         return [x.new_tensor(float(len(x))), x.sum(0)]
        ...     def fit(self, statistics):
        ...         count, total = statistics
        ...         self.mean.copy_(total / count)
        ...         return {"mean_norm": float(self.mean.norm())}
        ...     def sample(self, num_samples, *, generator=None):
        ...         return self.mean + torch.randn(num_samples, 2, generator=generator)
        >>> model = MeanModel()
        >>> model.fit(model.batch_statistics(torch.ones(4, 2)))
        {'mean_norm': 1.4142135381698608}
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
        """The statistics of one training batch (a collated batch of items), as a list of
        tensors combined over the generation's batches by :attr:`combine`."""

    @abc.abstractmethod
    def fit(self, statistics: list[Tensor]) -> dict[str, float]:
        """Set the model from the statistics of the whole generation, in place and without
        gradients (called under ``torch.no_grad()`` by Neon); return metrics to log (may be empty)."""

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
