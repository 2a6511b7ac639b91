"""Seeding: every random draw of generation ``t`` on rank ``r`` comes from ``(seed, t, r)``.

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

from sclc_lightning.data.budget import derive_seed

__all__ = ["forked_rng", "reseed"]


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
