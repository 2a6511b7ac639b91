import itertools
import math

import pytest
import torch

from sclc_lightning.correctors import OptimalTransportCorrector, RandomPairingCorrector, min_distance_matching
from sclc_lightning.data import ItemCodec, RealData, SyntheticBatch


def real_data(points: torch.Tensor) -> RealData:
    return RealData(list(points), ItemCodec.infer(points[0]))


def test_matching_is_minimum_total_distance() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        y, z = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
        match = min_distance_matching(y, z)
        best = min(sum(float((y[i] - z[p[i]]).norm()) for i in range(6)) for p in itertools.permutations(range(6)))
        assert math.isclose(sum(float((y[i] - z[match[i]]).norm()) for i in range(6)), best, rel_tol=1e-9)
        assert sorted(match.tolist()) == list(range(6))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 5.0, float("inf")])
def test_ot_formula(gamma: float) -> None:
    real = torch.randn(40, 2, generator=torch.Generator().manual_seed(1)) + 5.0
    y = torch.randn(10, 2, generator=torch.Generator().manual_seed(2))
    batch = SyntheticBatch(y, torch.arange(10))
    corrector = OptimalTransportCorrector(strength=gamma)
    out = corrector.correct(batch, generation=1, generator=torch.Generator().manual_seed(3), reference=real_data(real))
    # Redo the draw of fresh targets with the same seed, then apply the definition.
    z = real[torch.randperm(40, generator=torch.Generator().manual_seed(3))[:10]]
    m = z[min_distance_matching(y, z)]
    expected = m if math.isinf(gamma) else y / (1 + gamma) + gamma * m / (1 + gamma)
    assert torch.allclose(out, expected)
    if gamma == 0:
        assert torch.equal(out, y)


def test_ot_with_target_sampler() -> None:
    def target(num: int, generator: torch.Generator) -> torch.Tensor:
        return torch.full((num, 2), 3.0)

    out = OptimalTransportCorrector(1.0, target_sampler=target).correct(
        SyntheticBatch(torch.zeros(4, 2), torch.arange(4)),
        generation=1,
        generator=torch.Generator(),
        reference=real_data(torch.zeros(4, 2)),
    )
    assert torch.allclose(out, torch.full((4, 2), 1.5))


def test_random_pairing_uses_a_permutation() -> None:
    real = torch.arange(20.0)[:, None]
    y = torch.zeros(20, 1)
    out = RandomPairingCorrector(float("inf")).correct(
        SyntheticBatch(y, torch.arange(20)),
        generation=1,
        generator=torch.Generator().manual_seed(0),
        reference=real_data(real),
    )
    assert sorted(out.flatten().tolist()) == list(range(20))  # every fresh target used once
    assert out.flatten().tolist() != list(range(20))
