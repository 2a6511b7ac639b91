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
from sclc_lightning.models._sampling import check_temperature
from sclc_lightning.models.exact_fit import ExactFitModule

__all__ = ["ESTIMATORS", "LaplaceModel"]

#: The fits :class:`LaplaceModel` makes.
ESTIMATORS = ("mle", "moments")


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
        return [self.first_tensor(batch).double().flatten(1)]

    def fit(self, statistics: list[Tensor]) -> dict[str, float]:
        (points,) = statistics
        if self.estimator == "moments":
            location = points.mean(0)
            scale = (points.var(0) / 2).sqrt() if len(points) > 1 else torch.zeros_like(location)
        else:
            location = points.quantile(0.5, dim=0)  # linear interpolation: the middle of the central pair
            scale = (points - location).abs().mean(0)
        self.location.copy_(location.to(self.location.dtype))
        self.scale.copy_(scale.to(self.scale.dtype))
        return {"scale": float(scale.mean()), "sigma": float(scale.mean()) * math.sqrt(2)}

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
