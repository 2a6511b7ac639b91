"""Seeding, in one place: every random draw of generation ``t`` on rank ``r`` comes from ``(seed, t, r)``.

The global torch, NumPy and ``random`` generators are reseeded at the start of each generation's
training, and sampling runs on a fork of them, so that a resumed run continues exactly as an
uninterrupted one and sampling never shifts training randomness.
"""

from __future__ import annotations

import os
import random
import secrets
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

__all__ = [
    "SEED_ORIGINS",
    "SEED_PURPOSES",
    "checkpoint_seed",
    "datamodule_seed",
    "derive_seed",
    "fit_seed",
    "forked_rng",
    "make_generator",
    "reseed",
    "resuming_from",
    "run_seed",
]

# Purposes of derived seeds; appending new ones keeps old seeds unchanged.
SEED_PURPOSES = (
    "sample",
    "correct",
    "templates",
    "mix",
    "order",
    "train",
    "corrector_setup",
    "loader",
    "evaluate",
    "dry_run",
    "dry_run_templates",
    "sample_round",
    "templates_round",
    "model_correct",
    "model_correct_templates",
)


#: Where a run's seed came from, as :func:`run_seed` reports it.
SEED_ORIGINS = ("given", "seed_everything", "drawn", "checkpoint")


def run_seed(requested: int | None) -> tuple[int, str]:
    """The seed a run draws everything from, and where it came from: ``requested`` when given
    (``"given"``); else the run's seed, the one ``seed_everything`` (Lightning's, or
    LightningCLI's ``seed_everything``) put in ``PL_GLOBAL_SEED`` (``"seed_everything"``); else a
    fresh one drawn from the operating system's entropy (``"drawn"``), so that two runs never
    share randomness by accident. The caller logs and records it, so a run can be repeated.

    Examples:
        >>> run_seed(7)
        (7, 'given')
        >>> import os
        >>> os.environ["PL_GLOBAL_SEED"] = "11"
        >>> run_seed(None)
        (11, 'seed_everything')
        >>> del os.environ["PL_GLOBAL_SEED"]
        >>> run_seed(None)[1]
        'drawn'
    """
    if requested is not None:
        return int(requested), "given"
    text = os.environ.get("PL_GLOBAL_SEED", "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(
                f"PL_GLOBAL_SEED must be an integer (seed_everything sets it), got {text!r}; unset it or pass `seed=`."
            ) from None
        if value < 0:
            raise ValueError(
                f"PL_GLOBAL_SEED must be an integer >= 0 (seed_everything sets it), got {text!r}; unset it or pass"
                " `seed=`."
            )
        return value, "seed_everything"
    return secrets.randbelow(2**32), "drawn"


# The seed drawn for a fit without seed_everything, by trainer: the loop and the DataModule of
# one fit share it; another Trainer draws another.
_DRAWN: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def resuming_from(trainer: Any) -> str | None:
    """The checkpoint the running fit of ``trainer`` resumes from, already while the DataModule
    and the callbacks are set up (Lightning restores the checkpoint after their ``setup``, and
    until then keeps its path only in ``Trainer._run``'s ``ckpt_path``, read from that frame);
    ``None`` outside a fit or for a fit from scratch. (It reads a Lightning internal, as
    ``sclc_lightning._lightning_compat`` does, which re-exports it and tests it; it lives here
    because this module imports nothing of the package.)"""
    import sys

    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "_run" and frame.f_locals.get("self") is trainer:
            path = frame.f_locals.get("ckpt_path")
            return None if path is None else str(path)
        frame = frame.f_back  # type: ignore[assignment]
    path = getattr(trainer, "ckpt_path", None)
    return None if path is None else str(path)


def checkpoint_seed(trainer: Any) -> int | None:
    """The run's seed recorded in the checkpoint the fit of ``trainer`` resumes from (the loop's
    state: the fit's seed, else, in older checkpoints, the loop's), or ``None`` for a fit from
    scratch or a checkpoint without the loop. Read before Lightning restores the checkpoint, so
    that DataModules set up before then take the seed the run started with."""
    if trainer is None:
        return None
    path = resuming_from(trainer)
    if path is None:
        return None
    known = _RESUMED.get(trainer)
    if known is not None and known[0] == path:
        return known[1]
    seed = None
    try:
        import torch

        if "://" in path:
            from lightning.fabric.utilities.cloud_io import _load

            checkpoint = _load(path, map_location="cpu", weights_only=True)
        else:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        state = (checkpoint.get("callbacks") or {}).get("SelfConsumingLoop") or {}
        recorded = state.get("fit_seed")
        if recorded is None:
            recorded = (state.get("fingerprint") or {}).get("seed")
        if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 0:
            seed = recorded
    except Exception:  # an unreadable file: Lightning's restore says what is wrong with it
        seed = None
    _RESUMED[trainer] = (path, seed)
    return seed


#: The checkpoint each Trainer resumes from, and the seed read from it.
_RESUMED: weakref.WeakKeyDictionary[Any, tuple[str, int | None]] = weakref.WeakKeyDictionary()


def fit_seed(trainer: Any) -> tuple[int, str]:
    """The run's seed for the fit of ``trainer`` (:func:`run_seed` without a requested seed):
    the seed of the run a resume continues (:func:`checkpoint_seed`), else ``seed_everything``'s,
    else one drawn once per Trainer, on rank zero and broadcast, so that every rank, the loop and
    the DataModule agree."""
    resumed = checkpoint_seed(trainer)
    if resumed is not None:
        return resumed, "checkpoint"
    seed, origin = run_seed(None)
    if origin == "drawn":
        if trainer in _DRAWN:
            return _DRAWN[trainer], origin
        strategy = getattr(trainer, "strategy", None)
        if strategy is not None:
            seed = int(strategy.broadcast(seed, src=0))
        _DRAWN[trainer] = seed
    return seed, origin


#: The seed each DataModule with ``seed=None`` took (see :func:`datamodule_seed`).
_DATA_SEEDS: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def datamodule_seed(datamodule: Any) -> int:
    """A DataModule's data seed: its ``seed`` when it is an integer; for ``None`` the run's
    (:func:`fit_seed` of its Trainer; outside a fit, :func:`run_seed`), said once. This is the
    convention of the bundled DataModules, for users' own: ``seed=None`` follows the run's seed,
    so that runs over seeds average over datasets as well as over the loop's draws. Once taken,
    a DataModule keeps its seed (its grammar, its train and test splits come from one seed, even
    when some are made before the fit and some in it)."""
    given = getattr(datamodule, "seed", None)
    if given is not None:
        return int(given)
    try:
        return _DATA_SEEDS[datamodule]
    except (KeyError, TypeError):
        pass
    trainer = getattr(datamodule, "trainer", None)
    seed, origin = fit_seed(trainer) if trainer is not None else run_seed(None)
    try:
        _DATA_SEEDS[datamodule] = seed
    except TypeError:  # not weakly referenceable: resolved again next time
        pass
    if origin == "drawn":
        from lightning.pytorch.utilities import rank_zero_info

        rank_zero_info(
            f"{type(datamodule).__name__}: data seed {seed}, drawn afresh (no seed_everything); pass"
            " seed_everything or `seed=` to repeat it."
        )
    return seed


def derive_seed(seed: int, purpose: str, generation: int, rank: int = 0, part: int = 0) -> int:
    """A 63-bit seed that depends only on ``(seed, purpose, generation, rank, part)``.

    This is what makes a generation's randomness independent of history, so that a resumed
    run draws exactly what an uninterrupted one draws. ``part`` numbers the further draws of a
    generation (the sampling rounds of a selecting corrector); ``0`` gives the seeds of earlier
    versions.
    """
    if purpose not in SEED_PURPOSES:
        raise ValueError(f"`purpose` must be one of {SEED_PURPOSES}, got {purpose!r}.")
    entropy = [seed, SEED_PURPOSES.index(purpose), generation, rank] + ([part] if part else [])
    sequence = np.random.SeedSequence(entropy)
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def make_generator(seed: int, purpose: str, generation: int, rank: int = 0, part: int = 0) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed`."""
    return torch.Generator().manual_seed(derive_seed(seed, purpose, generation, rank, part))


def reseed(seed: int, generation: int, rank: int, purpose: str = "train") -> None:
    """Seed the global torch, NumPy and ``random`` generators from ``(seed, purpose, generation, rank)``."""
    value = derive_seed(seed, purpose, generation, rank)
    torch.manual_seed(value)
    np.random.seed(value % 2**32)
    random.seed(value)


@contextmanager
def forked_rng(seed: int, generation: int, rank: int, device: torch.device, purpose: str = "sample") -> Iterator[None]:
    """Seed the global generators for sampling and restore them afterwards (a model that ignores
    the ``generator`` argument still samples repeatably)."""
    devices = [device] if device.type == "cuda" else []
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices):
        reseed(seed, generation, rank, purpose=purpose)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
