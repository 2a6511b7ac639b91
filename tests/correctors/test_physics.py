"""The physics corrector: simulated replays of the planar biped's motions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sclc_lightning.correctors import PhysicsCorrector, make_corrector
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.physics import generate_motions, physics_violations
from sclc_lightning.physics.sim import CONTACT_TOLERANCE

LABELS = np.arange(8) % 4


@pytest.fixture(scope="module")
def real() -> torch.Tensor:
    return torch.from_numpy(generate_motions(LABELS, 24, seed=0))


def correct(corrector: PhysicsCorrector, motions: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    batch = SyntheticBatch(motions, torch.arange(len(motions)), labels)
    out = corrector.correct(batch, generation=1, generator=torch.Generator(), reference=None)  # type: ignore[arg-type]
    assert isinstance(out, torch.Tensor)
    return out


def test_penetrating_motion_comes_out_on_the_floor(real: torch.Tensor) -> None:
    sunk = real.clone()
    sunk[:, :, 1] -= 0.15  # the whole body 15 cm into the floor
    before = physics_violations(sunk.numpy())["penetration"]
    assert before.min() > 0.1
    after = physics_violations(correct(PhysicsCorrector(num_workers=0), sunk).numpy())
    assert after["penetration"].max() < 0.5 * CONTACT_TOLERANCE  # the simulator's contact softness, ~1 mm
    assert after["floating"].max() < CONTACT_TOLERANCE


def test_floating_motion_comes_down(real: torch.Tensor) -> None:
    lifted = real.clone()
    lifted[:, :, 1] += 0.3
    assert physics_violations(lifted.numpy())["floating"].min() > 0.25
    after = physics_violations(correct(PhysicsCorrector(num_workers=0), lifted).numpy())["floating"]
    assert after.mean() < 0.05  # falls within the first frames and stays down


def test_real_motion_comes_out_nearly_unchanged(real: torch.Tensor) -> None:
    out = correct(PhysicsCorrector(num_workers=0), real)
    joints = (out - real)[:, :, 3:].abs().mean()
    spread = real[:, :, 3:].std(dim=(0, 1)).mean()
    # a few degrees mean over frames and joints (targets low-passed, PD lag), a small share of their spread
    assert float(joints) < 0.05 and float(joints) < float(spread) / 8
    assert float((out - real)[:, :, 1].abs().mean()) < 0.05  # root height, metres


def test_count_shape_labels_and_workers(real: torch.Tensor) -> None:
    labels = torch.from_numpy(LABELS)
    noisy = real + 0.05 * torch.randn(real.shape, generator=torch.Generator().manual_seed(0))
    one = correct(PhysicsCorrector(num_workers=0, chunk_size=3), noisy, labels)
    two = correct(PhysicsCorrector(num_workers=2, chunk_size=3), noisy, labels)
    assert one.shape == noisy.shape and one.dtype == noisy.dtype
    assert torch.equal(one, two)  # deterministic, independent of workers and chunking
    half = correct(make_corrector("physics", {"strength": 1.0, "num_workers": 0}), noisy)  # type: ignore[arg-type]
    assert torch.allclose(half, (noisy + one) / 2, atol=1e-6)


def test_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\(num, frames, 9\)"):
        correct(PhysicsCorrector(num_workers=0), torch.zeros(2, 5, 4))
