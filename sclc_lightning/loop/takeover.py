"""The trainer settings the loop takes over for one fit, and gives back afterwards: one epoch per
generation, the train dataloader asked for again at every epoch, from the loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_warn

from sclc_lightning import _lightning_compat as compat

__all__ = ["TrainerTakeover"]


class TrainerTakeover:
    """Changes the trainer for a fit (:meth:`take`) and restores it (:meth:`restore`, also after
    an exception); restoring twice, or without taking, does nothing."""

    def __init__(self) -> None:
        self._saved: dict[str, Any] | None = None
        self._steps: int | None = None  # the user's max_steps while the estimate caps it

    def take(self, trainer: pl.Trainer, provider: Callable[[], Any], num_epochs: int, generations: int) -> None:
        """Stop the fit after ``num_epochs`` epochs and serve every epoch's loader from ``provider``.

        Raises:
            ValueError: ``Trainer(limit_train_batches)`` is set: the loop sets the budget itself.
        """
        if trainer.limit_train_batches != 1.0:
            raise ValueError(
                "SelfConsumingLoop sets the training budget itself: `Trainer(limit_train_batches=...)`"
                f" must be 1.0, got {trainer.limit_train_batches!r}; use `images_per_generation`."
            )
        if trainer.max_steps != -1:
            rank_zero_warn(
                f"`Trainer(max_steps={trainer.max_steps})` may stop the fit before the last of"
                f" the {generations} generations."
            )
        for callback in trainer.callbacks:  # type: ignore[attr-defined]
            if isinstance(callback, compat.classes_named("callbacks", "EarlyStopping")):
                rank_zero_warn(
                    f"EarlyStopping(monitor={callback.monitor!r}) stops the whole self-consuming run when it"
                    f" triggers: no generation after that one is trained (of {generations}). Each generation"
                    " trains its fixed budget; use it only to end a run that has gone wrong."
                )
        chosen = trainer.fit_loop.max_epochs
        if chosen not in (None, -1, 1000, num_epochs):  # -1 (the README's) or Lightning's default 1000
            rank_zero_warn(
                f"`Trainer(max_epochs={chosen})` is replaced by the loop: one epoch per generation,"
                f" {num_epochs} epochs for generations {generations - num_epochs + 1}..{generations};"
                " set `generations` to train fewer (and `max_epochs=-1`)."
            )
        self._saved = {
            "reload_dataloaders_every_n_epochs": compat.get_reload_every_n_epochs(trainer),
            "max_epochs": trainer.fit_loop.max_epochs,
        }
        compat.set_reload_every_n_epochs(trainer, 1)
        trainer.fit_loop.max_epochs = num_epochs
        compat.install_train_source(trainer, provider)

    def cap_steps(self, trainer: pl.Trainer, steps: int) -> None:
        """Until :meth:`uncap_steps`, cap ``max_steps`` at the fit's planned optimizer steps, so
        that ``trainer.estimated_stepping_batches`` (the first epoch's batches times the epochs,
        capped by ``max_steps``) gives them before fitting starts; the preview loader is as long
        as the longest generation, so the product is never below them."""
        if self._steps is None:
            self._steps = trainer.fit_loop.max_steps
        own = self._steps
        compat.set_max_steps(trainer, steps if own == -1 else min(steps, own))

    def uncap_steps(self, trainer: pl.Trainer) -> None:
        """Give ``max_steps`` back before training (no-op when not capped)."""
        if self._steps is not None:
            compat.set_max_steps(trainer, self._steps)
            self._steps = None

    def restore(self, trainer: pl.Trainer) -> None:
        """Give the trainer its own settings and train dataloader source back."""
        self.uncap_steps(trainer)
        compat.restore_train_source(trainer)
        if self._saved is not None:
            compat.set_reload_every_n_epochs(trainer, self._saved["reload_dataloaders_every_n_epochs"])
            trainer.fit_loop.max_epochs = self._saved["max_epochs"]
            self._saved = None
