import math

import pytest
import torch

from sclc_lightning.metrics import feature_diversity, frechet_distance, mmd_rbf, mode_statistics, moment_drift


def test_mmd_by_hand() -> None:
    x = torch.tensor([[0.0], [1.0]])
    y = torch.tensor([[0.0], [2.0]])
    k = lambda a, b: math.exp(-((a - b) ** 2) / 2.0)  # noqa: E731 - bandwidth 1
    expected = k(0, 1) + k(0, 2) - 2 * (k(0, 0) + k(0, 2) + k(1, 0) + k(1, 2)) / 4
    assert math.isclose(mmd_rbf(x, y, bandwidth=1.0), expected, rel_tol=1e-12)


def test_mmd_and_drift_separate_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    reference = torch.randn(500, 2, generator=g)
    same = torch.randn(500, 2, generator=g)
    shifted = torch.randn(500, 2, generator=g) * 2.0 + 1.0
    assert abs(mmd_rbf(same, reference)) < 0.01 < mmd_rbf(shifted, reference)
    mean_same, cov_same = moment_drift(same, reference)
    mean_shift, cov_shift = moment_drift(shifted, reference)
    assert (
        mean_same < 0.2
        and cov_same < 0.3
        and abs(mean_shift - math.sqrt(2)) < 0.2
        and abs(cov_shift - 3 * math.sqrt(2)) < 0.6
    )
    assert frechet_distance(same, reference) < 0.2 < frechet_distance(shifted, reference)


def test_mode_statistics() -> None:
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    samples = torch.tensor([[0.1, 0.0], [0.0, 0.3], [5.0, 5.0]])
    coverage, spread = mode_statistics(samples, centres, radius=0.5)
    assert coverage == 0.5 and math.isclose(spread, 0.2, rel_tol=1e-6)  # float32 inputs


def test_feature_diversity_pairs_distinct_items() -> None:
    features = torch.tensor([[0.0], [1.0], [3.0]])
    generator = torch.Generator().manual_seed(0)
    # the mean distance over the three distinct pairs is (1 + 3 + 2) / 3 = 2
    assert feature_diversity(features, num_pairs=20_000, generator=generator) == pytest.approx(2.0, abs=0.03)
    # within labels: label 0 has the single pair at distance 1; label 1 has one item and is skipped
    assert feature_diversity(features, torch.tensor([0, 0, 1]), generator=generator) == 1.0
    assert feature_diversity(torch.ones(5, 3), generator=generator) == 0.0
    assert math.isnan(feature_diversity(features, torch.tensor([0, 1, 2])))


def test_functional_metrics_return_float64_tensors() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(50, 2, generator=g), torch.randn(60, 2, generator=g)
    values = [frechet_distance(a, b), mmd_rbf(a, b), *moment_drift(a, b), feature_diversity(a, generator=g)]
    values += list(mode_statistics(a, torch.zeros(1, 2), radius=1.0))
    assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float64 and v.dim() == 0 for v in values)
