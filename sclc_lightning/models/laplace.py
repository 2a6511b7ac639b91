r"""A Laplace family fitted exactly on each generation's data: the non-Gaussian exact-fit model
of Qiao et al. (2026)'s selection-bias study.

Each dimension is an independent Laplace distribution with density
:math:`\frac{1}{2b}e^{-|x-\mu|/b}`. The maximum-likelihood fit on the generation's whole
training set is, per dimension, the median :math:`\mu` (the middle of the two central points
when there is an even number) and the mean absolute deviation from it, :math:`b`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor

from sclc_lightning._checks import check_number, plain_numbers
from sclc_lightning.mixing.weighting import split_weights
from sclc_lightning.models._sampling import check_temperature
from sclc_lightning.models.exact_fit import ExactFitModule

__all__ = ["ESTIMATORS", "LaplaceModel", "weighted_median"]

#: The fits :class:`LaplaceModel` makes.
ESTIMATORS = ("mle", "moments")


def weighted_median(points: Tensor, weights: Tensor) -> Tensor:
    """The median of each column of ``points`` with each row counted ``weights`` times: the first
    sorted value where the cumulative weight reaches half the total, or the middle of it and the
    next when the half falls exactly between them (with weights 1, the middle of the central
    pair, as ``quantile(0.5)``). Rows of weight 0 are left out.

    Examples:
        >>> import torch
        >>> x = torch.tensor([[1.0], [2.0], [3.0], [10.0]], dtype=torch.float64)
        >>> weighted_median(x, torch.ones(4, dtype=torch.float64)).tolist()
        [2.5]
        >>> weighted_median(x, torch.tensor([1.0, 1.0, 1.0, 4.0], dtype=torch.float64)).tolist()
        [10.0]
        >>> weighted_median(x, torch.tensor([1.0, 1.0, 1.0, 3.0], dtype=torch.float64)).tolist()  # half at 3
        [6.5]
    """
    points, weights = points[weights > 0], weights[weights > 0]  # a weight 0 never decides the median
    ordered, order = points.sort(0)
    cumulative = weights[order].cumsum(0)
    half = weights.sum() / 2
    below = (cumulative < half * (1 - 1e-12)).sum(0).clamp_max(len(points) - 1)
    lower = ordered.gather(0, below[None]).squeeze(0)
    upper = ordered.gather(0, (below + 1).clamp_max(len(points) - 1)[None]).squeeze(0)
    exactly = torch.isclose(cumulative.gather(0, below[None]).squeeze(0), half, rtol=1e-12, atol=0)
    return torch.where(exactly, (lower + upper) / 2, lower)


@plain_numbers
class LaplaceModel(ExactFitModule):
    r"""Independent Laplace distributions per dimension, whose "training" is the exact
    maximum-likelihood fit: the median and the mean absolute deviation from it of the
    generation's whole training set (every point is kept for the median: ``combine="concat"``).

    Args:
        dim: dimension of the data points.
        estimator: ``"mle"`` (default): the maximum-likelihood fit, the median and the mean
            absolute deviation from it; ``"moments"``: the mean and :math:`b = \sqrt{s^2/2}`
            from the unbiased variance :math:`s^2` (the same distribution, fitted by its first
            two moments).

    After each generation it logs ``scale`` (the mean :math:`b` over the dimensions) and
    ``sigma`` (the mean standard deviation, :math:`\sqrt{2}\,b`). Items may be tensors of shape
    ``(dim,)`` or tuples/dicts whose first field is one.

    Examples:
        >>> model = LaplaceModel(dim=1)
        >>> logged = model.fit(model.batch_statistics(torch.tensor([[0.0], [1.0], [3.0], [10.0]])))
        >>> {key: round(value, 4) for key, value in logged.items()}
        {'scale': 3.0, 'sigma': 4.2426}
        >>> float(model.location[0])  # the middle of the two central points, 1 and 3
        2.0
    """

    #: Reads each item's weight (:mod:`~sclc_lightning.mixing.weighting`): a weighted fit.
    reads_item_weights = True

    combine = "concat"

    def __init__(self, dim: int = 2, estimator: Literal["mle", "moments"] = "mle") -> None:
        super().__init__()
        self.dim = check_number("dim", dim, minimum=1, integer=True)
        if estimator not in ESTIMATORS:
            raise ValueError(f"`estimator` must be one of {list(ESTIMATORS)}, got {estimator!r}.")
        self.estimator = estimator
        self.save_hyperparameters()
        self.location = torch.nn.Parameter(torch.zeros(self.dim), requires_grad=False)
        self.scale = torch.nn.Parameter(torch.full((self.dim,), 1 / math.sqrt(2)), requires_grad=False)

    def batch_statistics(self, batch: Any) -> list[Tensor]:
        batch, weights = split_weights(batch)
        points = self.first_tensor(batch).double().flatten(1)
        return [points] if weights is None else [points, weights.double().to(points.device)]

    def fit(self, statistics: list[Tensor]) -> dict[str, float]:
        points = statistics[0]
        if len(statistics) == 2:
            location, scale = self._weighted_fit(points, statistics[1])
        elif self.estimator == "moments":
            location = points.mean(0)
            scale = (points.var(0) / 2).sqrt() if len(points) > 1 else torch.zeros_like(location)
        else:
            location = points.quantile(0.5, dim=0)  # linear interpolation: the middle of the central pair
            scale = (points - location).abs().mean(0)
        self.location.copy_(location.to(self.location.dtype))
        self.scale.copy_(scale.to(self.scale.dtype))
        return {"scale": float(scale.mean()), "sigma": float(scale.mean()) * math.sqrt(2)}

    def _weighted_fit(self, points: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
        """The fit with each point counted with its weight: the weighted median and the weighted
        mean absolute deviation (``"mle"``), or the weighted mean and half the weighted variance
        (``"moments"``, unbiased for reliability weights)."""
        total = weights.sum()
        if self.estimator == "moments":
            location = weights @ points / total
            divisor = total - (weights * weights).sum() / total
            variance = weights @ (points - location).pow(2) / divisor if divisor > 0 else torch.zeros_like(location)
            return location, (variance / 2).sqrt()
        location = weighted_median(points, weights)
        return location, weights @ (points - location).abs() / total

    def log_prob(self, points: Tensor) -> Tensor:
        """The log-density of each point, shape ``(len(points),)``, float64 (the scale floored at
        1e-12 so that a collapsed model still answers)."""
        scale = self.scale.double().clamp_min(1e-12)
        distance = (points.double().flatten(1).to(scale.device) - self.location.double()).abs()
        return -(torch.log(2 * scale) + distance / scale).sum(1)

    def validate_weights(self, state_dict: dict[str, Tensor]) -> None:
        """Refuse a negative scale (Neon's extrapolated weights can make one).

        Raises:
            ValueError: naming the entry.
        """
        if bool((state_dict["scale"] < 0).any()):
            raise ValueError(f"scale: a Laplace scale is never negative, got {state_dict['scale'].tolist()}")

    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        conditions: Any = None,
        temperature: float = 1.0,
    ) -> Tensor:
        r"""``num_samples`` points, shape ``(num_samples, dim)``: :math:`\mu + \tau b (E_1 - E_2)`
        with :math:`E_1, E_2` independent exponentials (their difference is a standard Laplace
        variable), so ``temperature`` :math:`\tau` scales the spread."""
        tau = check_temperature(temperature, type(self).__name__)
        shape = (2, num_samples, self.dim)
        exponential = torch.empty(shape, dtype=torch.float64).exponential_(generator=generator)
        return (self.location.double() + tau * self.scale.double() * (exponential[0] - exponential[1])).to(
            self.location.dtype
        )
