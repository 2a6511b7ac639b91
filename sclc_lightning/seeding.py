"""Seeding, in one place: every random draw of generation ``t`` on rank ``r`` comes from ``(seed, t, r)``.

The global torch, NumPy and ``random`` generators are reseeded at the start of each generation's
training, and sampling runs on a fork of them, so that a resumed run continues exactly as an
uninterrupted one and sampling never shifts training randomness.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["SEED_PURPOSES", "derive_seed", "forked_rng", "make_generator", "reseed"]

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
