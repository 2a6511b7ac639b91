"""``start_from="initial"``: every generation after the first trains from the state the run started
from (the model's weights, the optimizers' and the schedulers' states), not from the previous
generation's.

This is the protocol of Gerstgrasser et al. (2024), who train a new model each iteration, and of
Shumailov et al. (2024), who fine-tune the same pretrained model anew each generation. The
weights are written once, when the run starts, to ``<output_dir>/initial_state.safetensors``;
the checkpoint's loop state holds the file's SHA-256 and the optimizer and scheduler states, and
a resumed run refuses a file that does not match.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from safetensors.torch import load_file, save_file
from torch import Tensor

from sclc_lightning._files import NotARegularFile, atomic_path, sha256_file
from sclc_lightning.store.manifest import RunDirectoryError

__all__ = ["INITIAL_STATE_FILE", "START_FROM", "InitialState"]

INITIAL_STATE_FILE = "initial_state.safetensors"
START_FROM = ("previous", "initial")


@dataclass
class InitialState:
    """What a run started from.

    Attributes:
        weights: the module's state dict, on the CPU.
        optimizers: every optimizer's state dict.
        schedulers: every learning-rate scheduler's state dict.
        digest: SHA-256 of the weights file (empty until written or read).
    """

    weights: dict[str, Tensor]
    optimizers: list[dict[str, Any]]
    schedulers: list[dict[str, Any]]
    digest: str = ""

    @classmethod
    def capture(cls, trainer: pl.Trainer, pl_module: pl.LightningModule) -> InitialState:
        """The state now, copied (it must not follow the training)."""
        # Cloned one by one: tied weights become separate tensors, which safetensors can store.
        weights = {name: t.detach().cpu().clone().contiguous() for name, t in pl_module.state_dict().items()}
        optimizers = [copy.deepcopy(o.state_dict()) for o in trainer.optimizers]
        schedulers = [copy.deepcopy(c.scheduler.state_dict()) for c in trainer.lr_scheduler_configs]
        return cls(weights, optimizers, schedulers)

    def write(self, folder: Path) -> None:
        """Write the weights (atomically) and record their digest."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / INITIAL_STATE_FILE
        with atomic_path(path) as tmp:
            save_file(self.weights, str(tmp))
        self.digest = sha256_file(path)

    @classmethod
    def open(
        cls, trainer: pl.Trainer, pl_module: pl.LightningModule, folder: Path, saved: dict[str, Any] | None
    ) -> InitialState:
        """The state generations start from: read back and checked when resuming a run that
        ``saved`` it, else taken now and written by global rank zero."""
        if saved is not None:
            return cls.read(folder, saved)
        state = cls.capture(trainer, pl_module)
        if trainer.is_global_zero:
            state.write(folder)
        return state

    def to_state(self) -> dict[str, Any]:
        """What the checkpoint keeps (the weights are in the file)."""
        return {"digest": self.digest, "optimizers": self.optimizers, "schedulers": self.schedulers}

    @classmethod
    def read(cls, folder: Path, state: dict[str, Any]) -> InitialState:
        """The state a checkpoint's loop state describes, its weights checked against the digest.

        Raises:
            RunDirectoryError: the file is missing or differs from the one the run wrote.
        """
        path = folder / INITIAL_STATE_FILE
        if not os.path.lexists(path):
            raise RunDirectoryError(
                f"{path} is missing: the run trains every generation from this initial state"
                " (start_from='initial'); restore the file or start a new run."
            )
        try:
            found = sha256_file(path)  # a regular file, or refused before it is read
        except NotARegularFile as err:
            raise RunDirectoryError(f"{err}; restore the file the run wrote, or start a new run.") from None
        if found != state["digest"]:
            raise RunDirectoryError(
                f"{path} has SHA-256 {found[:16]}…, not the {str(state['digest'])[:16]}… the run wrote:"
                " it was changed or replaced; restore it or start a new run."
            )
        return cls(load_file(str(path)), state["optimizers"], state["schedulers"], found)

    def apply(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Put the module, the optimizers and the schedulers back in this state."""
        pl_module.load_state_dict(self.weights, strict=True)
        if len(trainer.optimizers) != len(self.optimizers) or len(trainer.lr_scheduler_configs) != len(self.schedulers):
            raise ValueError(
                f"start_from='initial': the run started with {len(self.optimizers)} optimizer(s) and"
                f" {len(self.schedulers)} scheduler(s), now {len(trainer.optimizers)} and"
                f" {len(trainer.lr_scheduler_configs)}."
            )
        for optimizer, state in zip(trainer.optimizers, self.optimizers):
            optimizer.load_state_dict(copy.deepcopy(state))
        for config, state in zip(trainer.lr_scheduler_configs, self.schedulers):
            config.scheduler.load_state_dict(copy.deepcopy(state))
