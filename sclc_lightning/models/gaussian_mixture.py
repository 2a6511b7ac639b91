r"""A Gaussian mixture refitted by EM on its own samples (Shumailov et al., Nature 2024, the GMM
experiment: the fit changes visibly by generation 50 and is near-degenerate by generation 2000).

Each generation gathers its training points and fits scikit-learn's
:class:`~sklearn.mixture.GaussianMixture` (full covariances) from a seed derived from the
model's ``seed`` and the generation, so that a resumed run refits the same way; the fitted
weights, means and covariances are parameters (in checkpoints) and :meth:`sample` draws from them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sclc_lightning._checks import COUNT, NON_NEGATIVE, check_arguments, plain_numbers
from sclc_lightning._trainer import attached_datamodule, current_generation
from sclc_lightning.mixing.weighting import split_weights
from sclc_lightning.models._sampling import check_temperature
from sclc_lightning.models.exact_fit import ExactFitModule
from sclc_lightning.seeding import derive_seed

__all__ = ["GaussianMixtureModel", "mixture_log_prob", "weighted_em"]


def mixture_log_prob(points: Tensor, weights: Tensor, means: Tensor, covariances: Tensor) -> Tensor:
    r"""Log-density of ``points`` ``(N, d)`` under :math:`\sum_k w_k N(\mu_k, \Sigma_k)`, shape ``(N,)``.

    Examples:
        >>> p = mixture_log_prob(torch.zeros(1, 1), torch.ones(1), torch.zeros(1, 1), torch.eye(1)[None])
        >>> round(float(p), 6)  # -log(2 pi) / 2
        -0.918939
    """
    points, weights, means, covariances = (t.double() for t in (points, weights, means, covariances))
    components = torch.distributions.MultivariateNormal(means, covariance_matrix=covariances, validate_args=False)
    per_component = components.log_prob(points[:, None, :])  # (N, k)
    return torch.logsumexp(per_component + weights.clamp_min(1e-300).log(), dim=1)


def weighted_em(
    points: Tensor,
    item_weights: Tensor,
    weights: Tensor,
    means: Tensor,
    covariances: Tensor,
    max_iter: int = 100,
    reg_covar: float = 1e-6,
    tol: float = 1e-3,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""EM for a full-covariance mixture with each point counted ``item_weights`` times (sklearn's
    ``GaussianMixture`` takes no sample weights), from ``(weights, means, covariances)``: the
    responsibilities times the item weights make every M-step a weighted one. Stops when the
    weighted mean log-likelihood gains less than ``tol`` (sklearn's rule) or after ``max_iter``
    steps; ``reg_covar`` is added to the diagonals as sklearn does.

    Examples:
        >>> x = torch.tensor([[0.0], [0.0], [4.0]], dtype=torch.float64)
        >>> w, m, c = weighted_em(x, torch.tensor([1.0, 1.0, 2.0]), torch.tensor([1.0]), torch.zeros(1, 1),
        ...                       torch.eye(1)[None])
        >>> round(float(m[0, 0]), 6)  # the weighted mean: (0 + 0 + 2 * 4) / 4
        2.0
    """
    x, omega = points.double(), item_weights.double()
    weights, means, covariances = weights.double(), means.double(), covariances.double()
    eye = torch.eye(x.shape[1], dtype=torch.float64)
    previous = -math.inf
    for _ in range(max_iter):
        components = torch.distributions.MultivariateNormal(means, covariance_matrix=covariances, validate_args=False)
        joint = components.log_prob(x[:, None, :]) + weights.clamp_min(1e-300).log()
        norm = torch.logsumexp(joint, dim=1)
        responsibility = (joint - norm[:, None]).exp() * omega[:, None]  # (N, k)
        mass = responsibility.sum(0) + 10 * torch.finfo(torch.float64).eps
        weights = mass / mass.sum()
        means = responsibility.T @ x / mass[:, None]
        offsets = x[:, None, :] - means[None]
        covariances = torch.einsum("nk,nki,nkj->kij", responsibility, offsets, offsets) / mass[:, None, None]
        covariances = covariances + reg_covar * eye
        bound = float(omega @ norm / omega.sum())
        if abs(bound - previous) < tol:
            break
        previous = bound
    return weights, means, covariances


@plain_numbers
class GaussianMixtureModel(ExactFitModule):
    r"""A mixture of ``num_components`` full-covariance Gaussians fitted by EM each generation.

    Args:
        num_components: :math:`k`.
        dim: dimension of the points.
        max_iter: EM iterations per fit (scikit-learn's ``max_iter``).
        reg_covar: added to the covariances' diagonals (scikit-learn's ``reg_covar``); it is the
            floor the variances collapse to.
        seed: with the generation, seeds each fit's initialisation.

    After each generation it logs ``weight_<i>`` (the weights sorted from largest), ``spread``
    (the trace of the mixture's covariance), ``component_variance`` (the weighted mean trace of
    the components' covariances: it goes to the ``reg_covar`` floor as the fit degenerates) and,
    when the DataModule has held-out points (``test_points``), ``test_log_likelihood`` (their
    mean log-density under the fit) and, when it knows the true density (``log_prob``),
    ``kl_to_data``, a Monte Carlo estimate of :math:`KL(p_{data} \| p_{model})` on them.
    """

    #: Reads each item's weight (:mod:`~sclc_lightning.mixing.weighting`): a weighted fit.
    reads_item_weights = True

    combine = "concat"

    def __init__(
        self, num_components: int = 2, dim: int = 2, max_iter: int = 100, reg_covar: float = 1e-6, seed: int = 0
    ) -> None:
        super().__init__()
        check_arguments(
            GaussianMixtureModel.__init__,
            locals(),
            num_components=COUNT,
            dim=COUNT,
            max_iter=COUNT,
            reg_covar=NON_NEGATIVE,
            seed=NON_NEGATIVE,
        )
        self.save_hyperparameters()
        self.num_components, self.dim = num_components, dim
        self.max_iter, self.reg_covar, self.seed = max_iter, reg_covar, seed
        k = num_components
        self.weights = torch.nn.Parameter(torch.full((k,), 1.0 / k, dtype=torch.float64), requires_grad=False)
        self.means = torch.nn.Parameter(torch.zeros(k, dim, dtype=torch.float64), requires_grad=False)
        self.covariances = torch.nn.Parameter(torch.eye(dim, dtype=torch.float64).repeat(k, 1, 1), requires_grad=False)

    def batch_statistics(self, batch: Any) -> list[Tensor]:
        batch, weights = split_weights(batch)
        points = self.first_tensor(batch).double().flatten(1)
        return [points] if weights is None else [points, weights.double().to(points.device)]

    def fit(self, statistics: list[Tensor]) -> dict[str, float]:
        from sklearn.mixture import GaussianMixture

        points = statistics[0].cpu().numpy()
        generation = current_generation(self.trainer)
        state = derive_seed(self.seed, "train", generation) % 2**31
        mixture = GaussianMixture(
            self.num_components,
            covariance_type="full",
            max_iter=self.max_iter,
            reg_covar=self.reg_covar,
            random_state=np.random.RandomState(state),
        ).fit(points)
        weights, means, covariances = (
            torch.from_numpy(a) for a in (mixture.weights_, mixture.means_, mixture.covariances_)
        )
        if len(statistics) == 2:  # weighted items: EM with weighted responsibilities, from sklearn's fit
            start = (weights, means, covariances)
            weights, means, covariances = weighted_em(
                statistics[0].cpu(), statistics[1].cpu(), *start, max_iter=self.max_iter, reg_covar=self.reg_covar
            )
        self.weights.copy_(weights)
        self.means.copy_(means)
        self.covariances.copy_(covariances)
        return self.describe()

    def mixture_covariance(self) -> Tensor:
        """The covariance of the whole mixture, ``(dim, dim)``."""
        w = self.weights[:, None, None]
        centre = (self.weights[:, None] * self.means).sum(0)
        offsets = self.means - centre
        return (w * (self.covariances + offsets[:, :, None] * offsets[:, None, :])).sum(0)

    def describe(self) -> dict[str, float]:
        """The metrics logged after each fit."""
        metrics = {f"weight_{i}": float(w) for i, w in enumerate(self.weights.sort(descending=True).values)}
        metrics["spread"] = float(self.mixture_covariance().trace())
        metrics["component_variance"] = float((self.weights * self.covariances.diagonal(dim1=1, dim2=2).sum(1)).sum())
        datamodule = attached_datamodule(self)
        held_out = getattr(datamodule, "test_points", None)
        if isinstance(held_out, Tensor) and len(held_out):
            log_p = mixture_log_prob(held_out, self.weights, self.means, self.covariances)
            metrics["test_log_likelihood"] = float(log_p.mean())
            true_log_prob = getattr(datamodule, "log_prob", None)
            if callable(true_log_prob):
                metrics["kl_to_data"] = float((true_log_prob(held_out).double() - log_p).mean())
        return metrics

    def log_prob(self, points: Tensor) -> Tensor:
        """The log-density of each point under the fitted mixture, shape ``(len(points),)``, float64."""
        return mixture_log_prob(points.double().cpu(), self.weights, self.means, self.covariances)

    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        conditions: Any = None,
        temperature: float = 1.0,
    ) -> Tensor:
        r"""``num_samples`` points of the fitted mixture, shape ``(num_samples, dim)``, float32;
        ``temperature`` :math:`\tau` scales each component's standard deviation
        (:math:`x = \mu_k + \tau L_k z`), the weights are kept."""
        tau = check_temperature(temperature, type(self).__name__)
        components = torch.multinomial(self.weights.double().cpu(), num_samples, replacement=True, generator=generator)
        noise = torch.randn(num_samples, self.dim, generator=generator, dtype=torch.float64)
        roots = torch.linalg.cholesky(self.covariances.double().cpu())
        points = self.means.double().cpu()[components] + tau * torch.einsum("nij,nj->ni", roots[components], noise)
        return points.float().to(self.device)
