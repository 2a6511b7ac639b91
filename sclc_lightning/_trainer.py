"""What the callbacks around the loop (metrics, figures, the CSV) need from a fit: the loop as
they see it, the generation being trained, and sampling in eval mode. This module does not
import the loop, so they do not either."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from sclc_lightning.data.real import RealData

__all__ = [
    "GenerationEndListener",
    "GenerationalLoop",
    "current_generation",
    "eval_mode",
    "find_loop",
    "notify_generation_end",
]


class GenerationalLoop(Callback, abc.ABC):
    """A callback that trains one generation per epoch, as other callbacks see it.

    :class:`~sclc_lightning.SelfConsumingLoop` is the implementation; evaluation callbacks find it
    with :func:`find_loop` and read only what is declared here.
    """

    @abc.abstractmethod
    def generation_of_epoch(self, epoch: int) -> int:
        """The generation trained in Lightning epoch ``epoch``."""

    @property
    @abc.abstractmethod
    def real_data(self) -> RealData:
        """The real training data (known once fitting has started)."""

    @property
    @abc.abstractmethod
    def history(self) -> Sequence[Any]:
        """One dataclass record per generation trained, in order."""


class GenerationEndListener(abc.ABC):
    """A callback told when a generation is over: its epoch ended, its epoch-level metrics are
    final and its end-of-epoch checkpoint is saved, and the next generation's data is not made
    yet. Mix it into a :class:`~lightning.pytorch.callbacks.Callback`."""

    @abc.abstractmethod
    def on_generation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> None:
        """Called by the loop before it samples generation ``generation + 1``."""


def notify_generation_end(trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> None:
    """Call :meth:`GenerationEndListener.on_generation_end` of every listening callback."""
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(callback, GenerationEndListener):
            callback.on_generation_end(trainer, pl_module, generation)


def find_loop(trainer: pl.Trainer) -> GenerationalLoop | None:
    """The trainer's :class:`~sclc_lightning.SelfConsumingLoop` callback, if it has one."""
    callbacks = trainer.callbacks  # type: ignore[attr-defined]
    return next((c for c in callbacks if isinstance(c, GenerationalLoop)), None)


def attached_datamodule(module: pl.LightningModule) -> Any:
    """The DataModule of the trainer ``module`` is attached to, or ``None`` (no trainer, or data
    given as loaders)."""
    trainer = module._trainer
    return None if trainer is None else getattr(trainer, "datamodule", None)


def current_generation(trainer: pl.Trainer) -> int:
    """The generation the current epoch trains (the epoch itself when there is no loop)."""
    loop = find_loop(trainer)
    return trainer.current_epoch if loop is None else loop.generation_of_epoch(trainer.current_epoch)


@contextmanager
def eval_mode(module: torch.nn.Module, trainer: pl.Trainer | None = None) -> Iterator[None]:
    """Eval mode and no gradients for sampling; the previous mode comes back even on error.

    With a ``trainer``, sampling also runs under the trainer's precision, as ``predict_step``
    does (e.g. bf16 autocast with ``precision="bf16-mixed"``).
    """
    was_training = module.training
    module.eval()
    precision = trainer.precision_plugin.predict_step_context() if trainer is not None else nullcontext()
    try:
        with torch.no_grad(), precision:
            yield
    finally:
        module.train(was_training)
