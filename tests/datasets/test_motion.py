"""Ground-truth motions: deterministic, cached, physically valid, labelled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sclc_lightning.datasets.motion import MotionDataModule
from sclc_lightning.physics import physics_violations
from sclc_lightning.physics.sim import CONTACT_TOLERANCE


def test_motions_are_deterministic_cached_and_valid(tmp_path: Path) -> None:
    data = MotionDataModule(n=24, n_test=8, frames=20, seed=0, cache_dir=str(tmp_path))
    data.setup("fit")
    assert data.train_set is not None and data.test_set is not None
    motions, labels = data.train_set.images, data.train_set.labels
    assert motions.shape == (24, 20, 9) and motions.dtype == torch.float32
    assert sorted(labels.tolist()) == sorted([0, 1, 2, 3] * 6)  # balanced motion types
    assert len(list(tmp_path.glob("motions-*.safetensors"))) == 2  # train and test, cached
    again = MotionDataModule(n=24, n_test=8, frames=20, seed=0, cache_dir=str(tmp_path / "elsewhere"))
    again.setup("fit")
    assert again.train_set is not None and torch.equal(again.train_set.images, motions)  # same seed, same data
    assert not torch.equal(data.test_set.images[:8], motions[:8])  # test split is another stream
    v = physics_violations(motions.numpy())
    assert v["penetration"].max() < 0.25 * CONTACT_TOLERANCE and v["floating"].max() < CONTACT_TOLERANCE
    assert v["skating"].mean() < 0.05 and v["joint_limit"].max() < 0.01  # planted feet, joints in range
    # the motion types differ: squats go down, marches lift a foot, kicks raise the right hip
    height = {k: float(motions[labels == k][:, :, 1].min(1).values.mean()) for k in range(4)}
    assert height[1] < height[0] - 0.03
    hip_r = {k: float(motions[labels == k][:, :, 3].max(1).values.mean()) for k in range(4)}
    assert hip_r[3] > hip_r[0] + 0.3 and hip_r[2] > hip_r[0] + 0.2
    assert np.isfinite(motions.numpy()).all()
