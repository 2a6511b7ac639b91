import itertools
import math

import pytest
import torch

from sclc_lightning.correctors import OptimalTransportCorrector, RandomPairingCorrector, min_distance_matching
from sclc_lightning.items import ItemCodec, RealData, SyntheticBatch


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


def labelled_real(num_classes: int = 3, per_class: int = 20) -> RealData:
    """Items ``(point, label)`` whose points sit near ``10 * label``: a point's label is visible
    in its data."""
    g = torch.Generator().manual_seed(4)
    items = [
        (torch.randn(2, generator=g) * 0.1 + 10.0 * label, torch.tensor(label))
        for label in range(num_classes)
        for _ in range(per_class)
    ]
    return RealData(items, ItemCodec.infer(items[0], condition_field=1))


@pytest.mark.parametrize("corrector", [OptimalTransportCorrector, RandomPairingCorrector])
def test_conditional_points_are_paired_within_their_class(corrector: type) -> None:
    # A generated point labelled c that sits near another class (the model confused them) must be
    # pulled toward real points of class c, never toward the class its data resembles.
    real = labelled_real()
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 1])
    y = torch.randn(10, 2, generator=torch.Generator().manual_seed(5)) + 10.0 * ((labels + 1) % 3)[:, None]
    batch = SyntheticBatch(y, torch.arange(10), labels)
    out = corrector(float("inf")).correct(batch, generation=1, generator=torch.Generator(), reference=real)
    nearest_class = (out[:, 0] / 10.0).round().long()
    assert torch.equal(nearest_class, labels)
    # Within a class the targets are distinct real points (one-to-one pairing).
    assert len({tuple(row.tolist()) for row in out}) == 10


def test_pairing_across_classes_on_request() -> None:
    real = labelled_real()
    labels = torch.zeros(6, dtype=torch.long)
    y = torch.full((6, 2), 20.0)  # near class 2, labelled 0
    batch = SyntheticBatch(y, torch.arange(6), labels)
    out = OptimalTransportCorrector(float("inf"), per_condition=False).correct(
        batch, generation=1, generator=torch.Generator().manual_seed(0), reference=real
    )
    assert not torch.equal((out[:, 0] / 10.0).round().long(), labels)  # the old behaviour, chosen
    assert OptimalTransportCorrector(per_condition=False).describe()["per_condition"] is False


def test_conditions_that_are_not_labels_are_refused() -> None:
    items = [(torch.randn(2), torch.randn(4)) for _ in range(8)]
    real = RealData(items, ItemCodec.infer(items[0], condition_field=1))
    batch = SyntheticBatch(torch.randn(3, 2), torch.arange(3), torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"one label per item.*shape \(3, 4\).*per_condition=False"):
        OptimalTransportCorrector().correct(batch, generation=1, generator=torch.Generator(), reference=real)


def test_a_class_without_real_items_is_named() -> None:
    batch = SyntheticBatch(torch.zeros(2, 2), torch.arange(2), torch.tensor([1, 7]))
    with pytest.raises(ValueError, match="condition 7, which no real item has"):
        OptimalTransportCorrector().correct(batch, generation=1, generator=torch.Generator(), reference=labelled_real())


def test_target_sampler_with_conditions_is_refused() -> None:
    batch = SyntheticBatch(torch.zeros(2, 2), torch.arange(2), torch.tensor([0, 1]))
    corrector = OptimalTransportCorrector(target_sampler=lambda num, generator: torch.zeros(num, 2))
    with pytest.raises(ValueError, match=r"target_sampler.*per_condition=False"):
        corrector.correct(batch, generation=1, generator=torch.Generator(), reference=labelled_real())
