"""Stopping a fit cleanly on a signal, and continuing it exactly.

Two kinds of signal stop a fit:

- ``SIGTERM``: a scheduler ends the job (SLURM preemption, ``scancel``), or ``sclc grid`` stops
  its workers.
- the cluster's requeue signal, sent some time before the job's time limit: submitit's
  (``SIGUSR2``, or ``$SUBMITIT_PREEMPT_SIGNAL``) in a submitit job, Lightning's
  :class:`~lightning.fabric.plugins.environments.SLURMEnvironment` ``requeue_signal``
  (``SIGUSR1``) in a plain SLURM job with ``auto_requeue``.

The signal handler only records the request: saving in the handler would save whatever state
the interrupted line left (half an optimizer step). The loop acts at the next safe point:

- after a training batch that ended an optimizer step (the ranks agree on it), it saves a
  checkpoint holding, besides Lightning's state, the loop's position in the generation and every
  rank's random generators. A resume from it continues the generation at the next batch, with
  the same data order and the same random draws, so the final weights are those of an
  uninterrupted run;
- while sampling (one process), it abandons the generation's sampling: the generation's data is
  made again on resume, from the checkpoint saved at the previous generation's end.

Then the job is requeued (submitit's own handler, or ``scontrol requeue`` as Lightning does) and
:class:`RunInterrupted` ends the fit. A second signal (more than two seconds after the first:
a signal sent to the process group and forwarded by ``sclc grid`` arrives twice) stops at once.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from sclc_lightning import _lightning_compat as compat

__all__ = [
    "EXIT_INTERRUPTED",
    "GenerationPosition",
    "RunInterrupted",
    "StopPoint",
    "StopRequests",
    "capture_rng",
    "checkpoint_path",
    "gather_rng",
    "requeue_signal",
    "restore_rng",
    "stop_requested",
]

#: A repeat of the stop signal within this many seconds is the same request, not a second one.
REPEAT_WINDOW_S = 2.0

# Whether a fit in this process has taken a stop request (and is stopping, or has stopped, on it).
_STOP_TAKEN = {"value": False}


def stop_requested() -> bool:
    """Whether a fit in this process took a stop signal: a later signal is the same stop (a
    process running fits one after the other, as a grid worker, must not record it as a new
    one, whenever it comes)."""
    return _STOP_TAKEN["value"]


#: Exit status of ``sclc fit`` when a signal stopped it (128 + SIGTERM, as a shell reports it).
EXIT_INTERRUPTED = 143


class RunInterrupted(BaseException):
    """A signal stopped the fit at a safe point (a ``BaseException``: nothing catches it by accident).

    Attributes:
        signal_name: the signal, e.g. ``"SIGTERM"``.
        checkpoint: the checkpoint saved to resume from, or ``None`` (resume from the last one).
        requeued: whether the job was requeued on the cluster.
        where: where the fit stopped, e.g. ``"generation 3, after batch 40"``.
    """

    def __init__(self, signal_name: str, checkpoint: Path | None, requeued: bool, where: str) -> None:
        self.signal_name, self.checkpoint, self.requeued, self.where = signal_name, checkpoint, requeued, where
        resume = (
            f"checkpoint {checkpoint}"
            if checkpoint is not None
            else "no checkpoint saved now: resume from the last one"
        )
        super().__init__(f"{signal_name} stopped the fit in {where}; {resume}{'; job requeued' if requeued else ''}.")


@dataclass(frozen=True)
class GenerationPosition:
    """Where in a generation a checkpoint was saved.

    Attributes:
        generation: the generation being trained.
        batches: batches of it each rank had trained.
        start_step: the global step at which its training started (its data was sampled there).
        world_size: the ranks that trained it.
        rng: every rank's random generator states (:func:`capture_rng`), by global rank.
    """

    generation: int
    batches: int
    start_step: int
    world_size: int
    rng: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> GenerationPosition:
        return cls(
            int(state["generation"]),
            int(state["batches"]),
            int(state["start_step"]),
            int(state["world_size"]),
            list(state["rng"]),
        )


def capture_rng() -> dict[str, Any]:
    """The global torch (CPU and CUDA), NumPy and ``random`` states, as checkpoint-safe values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # type: ignore[misc]
    version, internal, py_gauss = random.getstate()
    numpy_keys = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [str(kind), numpy_keys, int(pos), int(has_gauss), float(gauss)],
        "python": [int(version), list(internal), py_gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Set the generators to a :func:`capture_rng` state."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, py_gauss = state["python"]
    random.setstate((version, tuple(internal), py_gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def requeue_signal(trainer: pl.Trainer) -> signal.Signals | None:
    """The signal by which the cluster asks this job to checkpoint and requeue, if any."""
    if os.environ.get("SUBMITIT_EXECUTOR"):
        name = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
        found = getattr(signal, name, None)
        return signal.Signals(found) if found is not None else None
    environment = compat.cluster_environment(trainer)
    if isinstance(environment, SLURMEnvironment) and environment.auto_requeue:
        return signal.Signals(environment.requeue_signal or signal.SIGUSR1)
    return None


def checkpoint_path(trainer: pl.Trainer) -> Path:
    """Where an interrupted fit saves: Lightning's ``hpc_ckpt_<n>.ckpt`` in the run directory,
    which a requeued SLURM job resumes from by itself."""
    return Path(compat.hpc_checkpoint_path(trainer))


def _slurm_requeue() -> bool:
    """``scontrol requeue`` this SLURM job, as Lightning's auto-requeue does."""
    job = os.environ.get("SLURM_JOB_ID")
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    scontrol = shutil.which("scontrol")
    if not job or scontrol is None:
        rank_zero_warn("SelfConsumingLoop: cannot requeue the job (no SLURM job id or no `scontrol` on PATH).")
        return False
    result = subprocess.run([scontrol, "requeue", job], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        rank_zero_warn(f"SelfConsumingLoop: `scontrol requeue {job}` failed: {result.stderr.strip()}")
        return False
    rank_zero_info(f"SelfConsumingLoop: requeued SLURM job {job}.")
    return True


class StopRequests:
    """The signal handlers of a fit, and what they asked for.

    :meth:`install` (again after Lightning installs its own) sets handlers for ``SIGTERM`` and
    the requeue signal that only record the request; a second request raises
    :class:`RunInterrupted` at once. :meth:`uninstall` puts the previous handlers back; a handler
    of this fit that is called later (Lightning restores the handlers it found when its fit
    started, which may be these) acts as the handler it replaced.
    """

    def __init__(self) -> None:
        self.requested: signal.Signals | None = None
        self.requeue: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}
        self._active = False
        self._since = 0.0

    def install(self, trainer: pl.Trainer) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        self.requeue = requeue_signal(trainer)
        self._active = True
        _STOP_TAKEN["value"] = self.requested is not None
        for signum in {signal.SIGTERM, *([self.requeue] if self.requeue is not None else [])}:
            current = signal.getsignal(signum)
            if current != self._handle:
                self._previous.setdefault(signum, current)
                signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        self._active = False
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous.items():
            if signal.getsignal(signum) == self._handle:
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None and time.monotonic() - self._since <= REPEAT_WINDOW_S:
            # The same stop often arrives twice at once (to the process group, and forwarded by
            # `sclc grid`): a repeat is the same request, even after the fit has ended on it.
            return
        if not self._active:  # the fit is over: act as the handler this one replaced
            previous = self._previous.get(signal.Signals(signum), signal.SIG_DFL)
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return
        if self.requested is not None:  # a second request, later: stop now
            raise RunInterrupted(signal.Signals(signum).name, None, False, "a second signal, at once")
        self.requested, self._since = signal.Signals(signum), time.monotonic()
        _STOP_TAKEN["value"] = True

    def pending(self, trainer: pl.Trainer) -> bool:
        """Whether any rank was asked to stop (a collective call with several ranks)."""
        local = self.requested is not None
        if trainer.world_size == 1:
            return local
        return bool(trainer.strategy.reduce_boolean_decision(local, all=False))

    def due(self, trainer: pl.Trainer, batch_idx: int) -> bool:
        """Whether to stop after batch ``batch_idx``: a request, after an optimizer step, not at
        the generation's end (its own checkpoint comes next). Collective with several ranks."""
        batches = batch_idx + 1
        if batches % trainer.accumulate_grad_batches or batches >= trainer.num_training_batches:
            return False
        return self.pending(trainer)

    def stop(self, trainer: pl.Trainer, checkpoint: Path, where: str) -> NoReturn:
        """After ``checkpoint`` is saved: requeue the job if asked (global rank zero) and end the fit."""
        rank_zero_info(f"SelfConsumingLoop: {self.signal_name()} in {where}; saved {checkpoint}.")
        requeued = self.requeue_job() if trainer.is_global_zero else False
        raise RunInterrupted(self.signal_name(), checkpoint, requeued, where)

    def requeue_job(self) -> bool:
        """Requeue the job when the request was the cluster's requeue signal (global rank zero)."""
        if self.requested is None or self.requested != self.requeue:
            return False
        if os.environ.get("SUBMITIT_EXECUTOR"):
            previous = self._previous.get(self.requested)
            if callable(previous):
                # submitit's handler dumps the job for resubmission, requeues and exits.
                self.uninstall()
                previous(int(self.requested), None)
            return False
        return _slurm_requeue()

    def signal_name(self) -> str:
        return "a stop request on another rank" if self.requested is None else self.requested.name

    def check_while_sampling(self, trainer: pl.Trainer, generation: int) -> Callable[[], None] | None:
        """A check the sampler calls between batches (one process only: ranks sample unequal
        shares, so they cannot agree mid-sampling)."""
        if trainer.world_size != 1:
            return None

        def check() -> None:
            if self.requested is not None:
                requeued = self.requeue_job()
                raise RunInterrupted(self.requested.name, None, requeued, f"generation {generation}'s sampling")

        return check


def gather_rng(trainer: pl.Trainer) -> list[dict[str, Any]]:
    """Every rank's :func:`capture_rng`, by global rank (a collective call with several ranks)."""
    state = capture_rng()
    if trainer.world_size == 1 or not torch.distributed.is_initialized():
        return [state]
    states: list[Any] = [None] * trainer.world_size
    torch.distributed.all_gather_object(states, state)
    return states


class StopPoint(pl.Callback):
    """The loop's safe point, after every other callback's batch-end hook (added last to the
    trainer's callbacks, after the checkpoint callbacks, so that what they update for a batch is
    in the checkpoint saved after it)."""

    def __init__(self, act: Callable[[pl.Trainer, int], None]) -> None:
        self._act = act

    @property
    def state_key(self) -> str:
        return "SelfConsumingLoop.StopPoint"

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._act(trainer, batch_idx)
