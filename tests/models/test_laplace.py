"""The Laplace family of Qiao et al. (2026)'s non-Gaussian rows: its exact fit is the maximum
likelihood (the median and the mean absolute deviation), its samples and log-density are the
distribution's, and the data module draws it."""

from __future__ import annotations

import math

import pytest
import torch

from sclc_lightning.datasets.toy import LaplaceDataModule
from sclc_lightning.models import LaplaceModel


def _fitted(points: torch.Tensor) -> LaplaceModel:
    model = LaplaceModel(dim=points.shape[1])
    model.fit(model.batch_statistics(points))
    return model


def test_the_fit_is_the_maximum_likelihood() -> None:
    points = torch.distributions.Laplace(torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])).sample(
        (41,)
    )  # a fixed draw of the global generator, reseeded by the test run; any draw must pass
    model = _fitted(points)
    best = float(model.log_prob(points).sum())
    for shift in (1e-3, -1e-3):  # the median is a maximum of the likelihood in the location ...
        for dim in (0, 1):
            moved = _fitted(points)
            moved.location.data[dim] += shift
            assert float(moved.log_prob(points).sum()) < best
            moved = _fitted(points)  # ... and the mean absolute deviation in the scale
            moved.scale.data[dim] *= 1 + 10 * shift
            assert float(moved.log_prob(points).sum()) < best
    assert torch.equal(model.location, points.median(0).values)  # an odd count: the median itself


def test_samples_and_log_density_are_the_laplace_distribution() -> None:
    """200,000 samples of Laplace(1, 2): the median and the mean absolute deviation have standard
    errors b/sqrt(n) = 0.0045 each (the median's variance is 1/(4 n f(mu)^2) = b^2/n); 5 of them."""
    model = LaplaceModel(dim=1)
    model.location.data.fill_(1.0)
    model.scale.data.fill_(2.0)
    samples = model.sample(200_000, generator=torch.Generator().manual_seed(0))
    refit = _fitted(samples)
    assert abs(float(refit.location[0]) - 1.0) < 5 * 2 / math.sqrt(200_000)
    assert abs(float(refit.scale[0]) - 2.0) < 5 * 2 / math.sqrt(200_000)
    draw = [model.sample(5, generator=torch.Generator().manual_seed(seed)) for seed in (0, 0, 1)]
    assert torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])  # the draws follow the generator
    hot = model.sample(200_000, generator=torch.Generator().manual_seed(0), temperature=2.0)
    assert torch.allclose(hot - 1.0, 2.0 * (samples - 1.0), atol=1e-5)  # the temperature scales the spread
    points = torch.tensor([[-3.0], [1.0], [2.5]])
    expected = torch.distributions.Laplace(torch.tensor(1.0), torch.tensor(2.0)).log_prob(points[:, 0].double())
    assert torch.allclose(model.log_prob(points), expected)


def test_a_negative_scale_is_refused_and_the_data_module_draws_laplace_points() -> None:
    model = LaplaceModel(dim=2)
    with pytest.raises(ValueError, match="scale: a Laplace scale is never negative"):
        model.validate_weights({"location": torch.zeros(2), "scale": torch.tensor([1.0, -0.1])})
    data = LaplaceDataModule(n=100_000, dim=2, location=3.0, scale=0.5, seed=0)
    data.setup("fit")
    assert data.train_points is not None
    refit = _fitted(data.train_points.double())
    assert torch.allclose(refit.location, torch.full((2,), 3.0), atol=5 * 0.5 / math.sqrt(100_000))
    assert torch.allclose(refit.scale, torch.full((2,), 0.5), atol=5 * 0.5 / math.sqrt(100_000))
    assert abs(float(data.train_points.var()) - 2 * 0.5**2) < 0.01  # variance 2 b^2


def test_the_moments_fit_takes_the_mean_and_the_variance() -> None:
    points = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    model = LaplaceModel(dim=1, estimator="moments")
    model.fit(model.batch_statistics(points))
    assert float(model.location[0]) == pytest.approx(3.5)
    assert float(model.scale[0]) == pytest.approx(math.sqrt(float(points.var()) / 2))
    with pytest.raises(ValueError, match="`estimator` must be one of"):
        LaplaceModel(estimator="median")  # type: ignore[arg-type]
