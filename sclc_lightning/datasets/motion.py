"""Ground-truth motions of the planar biped, as a LightningDataModule."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch.utils.data import DataLoader

from sclc_lightning._checks import COUNT, NON_NEGATIVE, Range, check_arguments, plain_numbers
from sclc_lightning._extras import require
from sclc_lightning._files import atomic_path
from sclc_lightning.datasets.images import LabelledImages
from sclc_lightning.seeding import datamodule_seed

__all__ = ["MotionDataModule"]

#: Bumped whenever the body, the scripts or the simulator settings change the motions.
MOTION_DATA_VERSION = 4


@plain_numbers
class MotionDataModule(pl.LightningDataModule):
    """Labelled motions ``(frames, 9)`` of the planar biped (:mod:`sclc_lightning.physics`).

    Each motion is a simulator rollout of a scripted controller of one of the motion types
    (``stand``, ``squat``, ``march``, ``kick``: the labels play the role of the paper's text
    prompts) with random parameters: physically valid by construction. Motions are generated
    from ``seed`` (train and test from separate streams), cached on disk as safetensors and
    reused. Items are ``(motion, label)``.

    Args:
        n: training motions (labels balanced).
        n_test: held-out motions.
        frames: frames per motion (20 frames per second).
        batch_size: loader batch size.
        seed: generation seed; ``None`` (default) takes the run's seed when the data are set up
            (:func:`~sclc_lightning.seeding.datamodule_seed`), so that seeds average over datasets.
        cache_dir: where the generated motions are kept (default ``~/.cache/sclc_lightning``).
        sim_workers: worker processes for the rollouts (0: this process).
    """

    num_classes = 4

    def __init__(
        self,
        n: int = 256,
        n_test: int = 256,
        frames: int = 32,
        batch_size: int = 64,
        seed: int | None = None,
        cache_dir: str | None = None,
        sim_workers: int = 0,
    ) -> None:
        super().__init__()
        check_arguments(
            MotionDataModule.__init__,
            locals(),
            n=COUNT,
            n_test=NON_NEGATIVE,
            frames=Range(minimum=2),
            batch_size=COUNT,
            seed=NON_NEGATIVE,
            sim_workers=NON_NEGATIVE,
        )
        if n < 1 or n_test < 0 or frames < 2:
            raise ValueError(f"Need n >= 1, n_test >= 0, frames >= 2; got {n}, {n_test}, {frames}.")
        self.n, self.n_test, self.frames, self.batch_size, self.seed = n, n_test, frames, batch_size, seed
        self.cache_dir = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "sclc_lightning"
        self.sim_workers = sim_workers
        self.train_set: LabelledImages | None = None
        self.test_set: LabelledImages | None = None
        require("mujoco", "physics", "MotionDataModule (motions simulated in MuJoCo)")

    def _split(self, count: int, stream: int) -> tuple[Tensor, Tensor]:
        from sclc_lightning.physics.sim import MOTION_TYPES, generate_motions

        seed = datamodule_seed(self)
        key = json.dumps([MOTION_DATA_VERSION, count, self.frames, seed, stream])
        path = self.cache_dir / f"motions-{hashlib.sha256(key.encode()).hexdigest()[:16]}.safetensors"
        if path.exists():
            tensors = load_file(str(path))
            return tensors["motions"], tensors["labels"]
        rng = np.random.default_rng([seed, stream])
        labels = rng.permutation(np.arange(count) % len(MOTION_TYPES))
        motions = generate_motions(labels.tolist(), self.frames, seed=seed * 2 + stream, num_workers=self.sim_workers)
        tensors = {"motions": torch.from_numpy(motions), "labels": torch.from_numpy(labels.astype(np.int64))}
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:  # grid points that start together write it at once
            save_file(tensors, str(tmp))
        return tensors["motions"], tensors["labels"]

    def setup(self, stage: str) -> None:
        if self.train_set is None:
            self.train_set = LabelledImages(*self._split(self.n, 0))
            self.test_set = LabelledImages(*self._split(self.n_test, 1))

    def train_dataloader(self) -> DataLoader[Any]:
        assert self.train_set is not None
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def test_dataloader(self) -> DataLoader[Any]:
        assert self.test_set is not None
        return DataLoader(self.test_set, batch_size=self.batch_size)
