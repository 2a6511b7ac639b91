"""Every use of a private Lightning attribute lives here, with tests in
``tests/test_lightning_compat.py`` that fail loudly if Lightning changes them.

The loop serves a new training set each generation. Lightning has no public hook to replace
the *source* of the train dataloader, so we swap ``fit_loop._data_source`` for one that calls
our provider, and let the public ``Trainer.reload_dataloaders_every_n_epochs`` ask for it at
every epoch (one epoch = one generation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.trainer.connectors.data_connector import _DataLoaderSource, _request_dataloader

from sclc_lightning.seeding import resuming_from  # Trainer._run's ckpt_path, read from its frame

__all__ = [
    "classes_named",
    "cluster_environment",
    "epoch_being_loaded",
    "get_reload_every_n_epochs",
    "hpc_checkpoint_path",
    "install_train_source",
    "invalidate_train_dataloader",
    "publish_metrics",
    "request_train_dataloader",
    "restore_train_source",
    "resuming_from",
    "set_reload_every_n_epochs",
]


class _ProviderSource(_DataLoaderSource):
    """A train-dataloader source that asks ``provider`` each time Lightning reloads."""

    def __init__(self, provider: Callable[[], Any], original: _DataLoaderSource):
        super().__init__(original.instance, original.name)
        self.provider = provider
        self.original = original

    def dataloader(self) -> Any:
        return self.provider()

    def is_defined(self) -> bool:
        return True


def request_train_dataloader(trainer: pl.Trainer) -> Any:
    """The user's train dataloader, from wherever ``trainer.fit`` was given it.

    Works for a DataModule, a LightningModule's ``train_dataloader`` and a loader passed to
    ``fit``; calls the original source even after :func:`install_train_source`.
    """
    source = trainer.fit_loop._data_source
    if isinstance(source, _ProviderSource):
        source = source.original
    if not source.is_defined():
        raise ValueError("SelfConsumingLoop needs a train dataloader, and the Trainer has none.")
    return _request_dataloader(source)


def install_train_source(trainer: pl.Trainer, provider: Callable[[], Any]) -> None:
    """Make ``provider()`` the train dataloader source of ``trainer.fit``."""
    source = trainer.fit_loop._data_source
    if isinstance(source, _ProviderSource):
        source = source.original
    trainer.fit_loop._data_source = _ProviderSource(provider, source)


def restore_train_source(trainer: pl.Trainer) -> None:
    """Undo :func:`install_train_source` (no-op when not installed)."""
    source = trainer.fit_loop._data_source
    if isinstance(source, _ProviderSource):
        trainer.fit_loop._data_source = source.original


def invalidate_train_dataloader(trainer: pl.Trainer) -> None:
    """Drop a train dataloader built before fitting started (e.g. by
    ``trainer.estimated_stepping_batches`` in ``configure_optimizers``) so the first epoch
    asks the provider again."""
    trainer.fit_loop._combined_loader = None


def epoch_being_loaded(trainer: pl.Trainer) -> int:
    """The epoch a train dataloader requested now will serve.

    Equal to ``trainer.current_epoch`` except when a fit resumes from a checkpoint saved at the
    end of an epoch: Lightning asks for the loader before it advances ``current_epoch`` past
    the finished epoch, and ``epoch_progress.current.processed`` already counts it.
    """
    return int(trainer.fit_loop.epoch_progress.current.processed)  # type: ignore[attr-defined]


def set_max_steps(trainer: pl.Trainer, value: int) -> None:
    """Change ``Trainer(max_steps)`` (the fit loop only reads it; its epoch loop holds it)."""
    trainer.fit_loop.epoch_loop.max_steps = value


def get_reload_every_n_epochs(trainer: pl.Trainer) -> int:
    """``Trainer(reload_dataloaders_every_n_epochs=...)`` as the trainer holds it.

    The value is a plain attribute set by Lightning's data connector, not a declared property.
    """
    return int(trainer.reload_dataloaders_every_n_epochs)  # type: ignore[attr-defined]


def set_reload_every_n_epochs(trainer: pl.Trainer, value: int) -> None:
    """Change how often the train dataloader is requested again (1: every epoch)."""
    trainer.reload_dataloaders_every_n_epochs = value  # type: ignore[attr-defined]


def classes_named(module: str, name: str) -> tuple[Any, ...]:
    """Lightning's class ``name`` of ``lightning.pytorch.<module>`` and, when the program uses the
    ``pytorch_lightning`` package (it is imported), of ``pytorch_lightning.<module>``: the loop
    works with both namespaces' Trainers, callbacks and loggers.

    Examples:
        >>> classes_named("callbacks", "EarlyStopping")[0].__module__
        'lightning.pytorch.callbacks.early_stopping'
    """
    import importlib
    import sys

    found = [getattr(importlib.import_module(f"lightning.pytorch.{module}"), name)]
    if "pytorch_lightning" in sys.modules:
        found.append(getattr(importlib.import_module(f"pytorch_lightning.{module}"), name))
    return tuple(found)


def describe_train_progress(bar: Any, text: str) -> None:
    """Set the description of the training bar of Lightning's TQDM or Rich progress bar (no-op
    for other bars, or before the bar exists)."""
    TQDMProgressBar = classes_named("callbacks", "TQDMProgressBar")
    RichProgressBar = classes_named("callbacks", "RichProgressBar")

    if isinstance(bar, TQDMProgressBar):
        try:
            bar.train_progress_bar.set_description(text)
        except TypeError:  # the bar is not created
            return
    elif isinstance(bar, RichProgressBar) and bar.progress is not None and bar.train_progress_bar_id is not None:
        bar.progress.update(bar.train_progress_bar_id, description=text)


def cluster_environment(trainer: pl.Trainer) -> Any:
    """The trainer's cluster environment (SLURM, torchelastic, ...); Lightning keeps it private."""
    return trainer._accelerator_connector.cluster_environment


def hpc_checkpoint_path(trainer: pl.Trainer) -> str:
    """The next ``hpc_ckpt_<n>.ckpt`` in the run directory, the checkpoint a requeued SLURM fit
    resumes from by itself (Lightning's own naming)."""
    return str(trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir))


def publish_metrics(trainer: pl.Trainer, values: dict[str, float], prog_bar: bool = False) -> None:
    """Make ``values`` part of the trainer's ``callback_metrics`` (and the progress bar's
    metrics) outside a ``LightningModule.log`` call, for metrics computed once an epoch's hooks
    have all run. Both properties return the logger connector's own dicts, which persist until
    the next value of the same name."""
    import torch

    trainer.callback_metrics.update({k: torch.tensor(float(v)) for k, v in values.items()})
    if prog_bar:
        trainer.progress_bar_metrics.update({k: float(v) for k, v in values.items()})


def count_one_step(trainer: pl.Trainer) -> None:
    """Add one optimizer step to ``trainer.global_step`` without stepping: the progress counter
    Lightning reads it from (automatic optimization: the optimizer's step progress; manual: the
    manual loop's), as an optimizer step would count it. For a generation whose model never
    steps an optimizer (fitted in closed form), so that checkpoints see each generation."""
    epoch_loop = trainer.fit_loop.epoch_loop
    module = trainer.lightning_module
    if module is None or module.automatic_optimization:
        progress = epoch_loop.automatic_optimization.optim_progress.optimizer.step
    else:
        progress = epoch_loop.manual_optimization.optim_step_progress
    progress.increment_ready()
    progress.increment_completed()
