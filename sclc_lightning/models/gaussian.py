r"""The papers' toy generative model: a Gaussian fitted exactly on each generation's data.

Training accumulates the sufficient statistics of every sample seen in a generation (one pass
over the mixed set with ``images_per_generation=None``) and, at the end of the generation, sets
the mean and the covariance: by default the unbiased estimate (divided by :math:`n - 1`, Bertrand
et al. 2024, §2.2; Gillman et al. 2024, §5), or the maximum-likelihood one (divided by :math:`n`)
with ``estimator="mle"``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sclc_lightning._checks import check_number, plain_numbers
from sclc_lightning._trainer import attached_datamodule
from sclc_lightning.metrics.functional import gaussian_w2, sqrtm_psd
from sclc_lightning.mixing.weighting import split_weights
from sclc_lightning.models._sampling import check_temperature
from sclc_lightning.models.exact_fit import ExactFitModule

__all__ = ["ESTIMATORS", "GaussianModel", "gaussian_w2"]

#: The covariance estimates :class:`GaussianModel` fits (``"known"``: none, the covariance stays
#: the target's).
ESTIMATORS = ("unbiased", "mle", "known")


@plain_numbers
class GaussianModel(ExactFitModule):
    r"""Multivariate Gaussian whose "training" is an exact fit: the sample mean and covariance
    of the generation's whole training set.

    Args:
        dim: dimension of the data points.
        target_mean: mean of the true data distribution :math:`N(\mu, \sigma^2 I)`, for the
            logged ``w2`` when the DataModule does not say (``true_distribution()``).
        target_std: its standard deviation.
        estimator: the covariance estimate, ``"unbiased"`` (divided by :math:`n - 1`, the
            papers' choice and the default) or ``"mle"`` (maximum likelihood, divided by
            :math:`n`). It decides how fast the loop collapses
            (:func:`~sclc_lightning.theory.expected_log_sigma_ratio` takes it too), and the
            :class:`~sclc_lightning.callbacks.StabilityMonitor` reads it from
            :attr:`variance_estimator`. ``"known"`` fits the mean only and keeps the covariance
            at ``target_std**2 * I``, the variance known (He, Xu & Cheng 2025's setting,
            :func:`~sclc_lightning.theory.weighted_mixing_variance`).

    Weighted items (a weighted mixing policy, :mod:`~sclc_lightning.mixing.weighting`) make the
    fit a weighted one: the mean :math:`\sum_i \omega_i x_i / \sum_i \omega_i` and the covariance
    :math:`\sum_i \omega_i (x_i - \mu)(x_i - \mu)^\top / D`, with :math:`D = V_1 - V_2/V_1`
    (unbiased, :math:`V_k = \sum_i \omega_i^k`; :math:`n - 1` when every weight is 1) or
    :math:`V_1` (``"mle"``).

    After each generation it logs ``w2`` (closed-form Wasserstein-2 distance between the fitted
    Gaussian and the true distribution) and ``sigma`` (mean standard deviation per dimension).
    Items may be tensors of shape ``(dim,)`` or tuples/dicts whose first field is one.
    """

    #: The theory ``sclc report`` draws over this model's runs: a registered
    #: :class:`~sclc_lightning.report.Theory` (see :mod:`sclc_lightning.report.closed_forms`).
    theory: str | None = "gaussian"
    #: Reads each item's weight (:mod:`~sclc_lightning.mixing.weighting`): a weighted fit.
    reads_item_weights = True

    def __init__(
        self, dim: int = 2, target_mean: float = 0.0, target_std: float = 1.0, estimator: str = "unbiased"
    ) -> None:
        super().__init__()
        if estimator not in ESTIMATORS:
            raise ValueError(f"`estimator` must be one of {list(ESTIMATORS)}, got {estimator!r}.")
        dim = check_number("dim", dim, minimum=1, integer=True)
        target_mean, target_std = (
            check_number("target_mean", target_mean),
            check_number("target_std", target_std, above=0),
        )
        self.save_hyperparameters()
        self.estimator = estimator
        self.dim = dim
        self.target_mean, self.target_std = target_mean, target_std
        # Parameters without gradients: checkpointed like any weights, set by the exact fit.
        self.mean = torch.nn.Parameter(torch.zeros(dim), requires_grad=False)
        cov = target_std**2 if estimator == "known" else 1.0
        self.cov = torch.nn.Parameter(cov * torch.eye(dim), requires_grad=False)

    def batch_statistics(self, batch: Any) -> list[Tensor]:
        # Sums of the points shifted by the current mean (the same all generation: it changes at
        # the fit), so that the covariance of a model collapsed far below its mean's magnitude
        # is not lost to cancellation in Σxxᵀ − n·x̄x̄ᵀ.
        batch, weights = split_weights(batch)
        points = self.first_tensor(batch)
        x = points.double().flatten(1) - self.mean.double().to(points.device)
        if weights is None:
            return [x.new_tensor(float(x.shape[0])), x.sum(0), x.T @ x]
        w = weights.double().to(x.device)
        return [w.sum(), w @ x, (x * w[:, None]).T @ x, (w * w).sum()]

    def fit(self, statistics: list[Tensor]) -> dict[str, float]:
        count, total, outer = statistics[:3]  # weighted: Σω, Σωx, Σωxxᵀ and Σω²
        shifted = total / count
        mean = self.mean.double().to(shifted.device) + shifted
        self.mean.copy_(mean.to(self.mean.dtype))
        if self.estimator != "known":
            squares = statistics[3] if len(statistics) == 4 else count
            divisor = count - squares / count if self.estimator == "unbiased" else count
            cov = (outer - count * torch.outer(shifted, shifted)) / divisor
            self.cov.copy_(cov.to(self.cov.dtype))
        return {"w2": self.w2(), "sigma": self.sigma}

    def true_distribution(self) -> tuple[Tensor, Tensor]:
        """Mean and covariance of the data: the DataModule's ``true_distribution()`` when it has
        one, else ``N(target_mean, target_std^2 I)``."""
        datamodule = attached_datamodule(self)
        if datamodule is not None and hasattr(datamodule, "true_distribution"):
            mean, cov = datamodule.true_distribution()
            return mean, cov
        return torch.full((self.dim,), float(self.target_mean)), self.target_std**2 * torch.eye(self.dim)

    def w2(self) -> float:
        """W2 distance between the fitted model and the true distribution."""
        return gaussian_w2(self.mean, self.cov, *self.true_distribution())

    def log_prob(self, points: Tensor) -> Tensor:
        """The log-density of each point under the fitted Gaussian, shape ``(len(points),)``,
        float64 (the covariance regularised by 1e-9 so that a collapsed model still answers)."""
        cov = self.cov.double() + 1e-9 * torch.eye(self.dim, dtype=torch.float64, device=self.cov.device)
        normal = torch.distributions.MultivariateNormal(self.mean.double(), covariance_matrix=cov)
        return normal.log_prob(points.double().flatten(1).to(cov.device))

    @property
    def variance_estimator(self) -> str:
        """``"unbiased"`` or ``"mle"``: declares the exact Gaussian of the theory, whose collapse
        :class:`~sclc_lightning.callbacks.StabilityMonitor` follows."""
        return self.estimator

    def validate_weights(self, state_dict: dict[str, Tensor]) -> None:
        """Refuse weights this model cannot hold: a covariance that is not symmetric positive
        semi-definite (a negative variance). Called on a Neon reference before generation 0
        and on the weights Neon makes.

        Raises:
            ValueError: naming the entry.
        """
        cov = state_dict["cov"].double()
        if not torch.allclose(cov, cov.T, rtol=1e-5, atol=1e-8):
            raise ValueError("cov: the covariance is not symmetric")
        smallest = float(torch.linalg.eigvalsh(cov).min()) if cov.numel() else 0.0
        if smallest < -1e-9 * max(1.0, float(cov.diagonal().abs().max())):
            raise ValueError(f"cov: the covariance is not positive semi-definite (smallest eigenvalue {smallest:.3g})")

    @property
    def sigma(self) -> float:
        """Mean standard deviation per dimension of the fitted model."""
        return float(self.cov.diagonal().clamp_min(0).sqrt().mean())

    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        conditions: Any = None,
        temperature: float = 1.0,
    ) -> Tensor:
        r"""``num_samples`` points from the fitted Gaussian, shape ``(num_samples, dim)``:
        :math:`x = \mu + \tau\,\Sigma^{1/2} z` with :math:`z \sim N(0, I)`, so ``temperature``
        :math:`\tau` scales the standard deviation (``1``: the fitted model itself)."""
        tau = check_temperature(temperature, type(self).__name__)
        # The symmetric square root tolerates the singular covariance of a collapsed model.
        root = sqrtm_psd(self.cov.double()) * tau
        noise = torch.randn(num_samples, self.dim, generator=generator, dtype=torch.float64)
        return (self.mean.double() + noise @ root).to(self.mean.dtype)
