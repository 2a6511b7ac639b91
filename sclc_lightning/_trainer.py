"""What the callbacks around the loop (metrics, figures, the CSV) need from a fit: the loop as
they see it, the generation being trained, and sampling in eval mode. This module does not
import the loop, so they do not either."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from sclc_lightning.items.real import RealData
from sclc_lightning.sampler import BoundSampler, bind_sampler
from sclc_lightning.seeding import fit_seed

__all__ = [
    "GenerationEndListener",
    "GenerationMetricProducer",
    "GenerationalLoop",
    "current_generation",
    "eval_mode",
    "evaluation_seed",
    "find_loop",
    "notify_generation_end",
    "sample_data",
    "settle_producers",
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

    @abc.abstractmethod
    def sampler(self, pl_module: pl.LightningModule) -> BoundSampler:
        """The module's sampler, as the loop calls it."""

    @property
    @abc.abstractmethod
    def conditional(self) -> bool:
        """Whether the loop samples with conditions (it has a condition field)."""

    @property
    @abc.abstractmethod
    def run_seed(self) -> int:
        """The run's seed (known once fitting has started; a resume takes its checkpoint's)."""


class GenerationEndListener(abc.ABC):
    """A callback told when a generation is over: its epoch ended, its epoch-level metrics are
    final and its end-of-epoch checkpoint is saved, and the next generation's data is not made
    yet. Mix it into a :class:`~lightning.pytorch.callbacks.Callback`."""

    @abc.abstractmethod
    def on_generation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> None:
        """Called by the loop before it samples generation ``generation + 1``."""


class GenerationMetricProducer(abc.ABC):
    """A callback that computes a generation's metrics from what every other hook of its epoch
    has logged (the module's own ``on_train_epoch_end`` included, which Lightning runs after the
    callbacks' hooks): it keeps the generation pending at its epoch's end and computes it in
    :meth:`settle`, which is called before any :class:`GenerationEndListener` reads the metrics
    and by the callback itself at the next epoch's start and the fit's end."""

    @abc.abstractmethod
    def settle(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Compute and publish the pending generation's metrics, if one is pending."""


def settle_producers(trainer: pl.Trainer) -> None:
    """Have every :class:`GenerationMetricProducer` publish its pending generation."""
    module = trainer.lightning_module
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(callback, GenerationMetricProducer):
            callback.settle(trainer, module)


def notify_generation_end(trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> None:
    """Call :meth:`GenerationEndListener.on_generation_end` of every listening callback, once
    every :class:`GenerationMetricProducer` has published the generation's metrics."""
    settle_producers(trainer)
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


def sample_data(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    num_samples: int,
    *,
    generator: Any,
    conditions: Any = None,
    sample_kwargs: Mapping[str, Any] | None = None,
) -> torch.Tensor:
    """``num_samples`` new data points from the sampler the loop uses (the module's ``sample``
    without a loop), detached: the data field alone when the sampler returns generated fields too.
    ``sample_kwargs``: the sampling settings to pass instead of the loop's (``{}``: none, the
    model's own distribution; ``None``: the loop's, e.g. its temperature).

    Raises:
        ValueError: the loop samples with conditions and none are given.
    """
    loop = find_loop(trainer)
    if loop is None:
        sampler, data_key = bind_sampler(pl_module, "sample", condition_field=None, extra=sample_kwargs), None
    else:
        if loop.conditional and conditions is None:
            raise ValueError(
                "The loop samples this model with conditions (`condition_field` is set); an evaluation must"
                " ask for the same: pass labels (e.g. the held-out split's)."
            )
        sampler, data_key = loop.sampler(pl_module), loop.real_data.codec.data_key
        if sample_kwargs is not None:
            sampler = dataclasses.replace(sampler, extra=dict(sample_kwargs))
    out = sampler(num_samples, generator=generator, conditions=conditions)
    if isinstance(out, Mapping):
        out = out[data_key]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{sampler.name} returned {type(out).__name__}, not a tensor of data points.")
    return out.detach()


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


def evaluation_seed(requested: int | None, trainer: Any) -> int:
    """The seed of a callback's draws (evaluation samples, figures, a detector's folds):
    ``requested`` when given; else the run's, so that runs over seeds differ in their evaluation
    noise too: the loop's seed (which a resume takes from its checkpoint), or without the loop
    :func:`fit_seed` of ``trainer``.

    Examples:
        >>> evaluation_seed(3, trainer=None)
        3
    """
    if requested is not None:
        return int(requested)
    loop = find_loop(trainer)
    if loop is not None:
        return loop.run_seed
    return fit_seed(trainer)[0]
