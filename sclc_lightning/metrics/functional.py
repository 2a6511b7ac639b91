"""Metrics between point clouds and feature sets, as pure functions returning float64 tensors
(0-d, or a pair of 0-d tensors), as torchmetrics' functional API does; ``float(...)`` them to log."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "dispersion",
    "feature_diversity",
    "frechet_distance",
    "gaussian_w2",
    "min_mode_weight",
    "mmd_rbf",
    "mode_statistics",
    "mode_weights",
    "moment_drift",
    "sqrtm_psd",
    "tail_mass",
]


def sqrtm_psd(matrix: Tensor) -> Tensor:
    """The symmetric square root of a positive semi-definite matrix (negative eigenvalues, from
    rounding, are taken as 0)."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def gaussian_w2(mean_a: Tensor, cov_a: Tensor, mean_b: Tensor, cov_b: Tensor) -> float:
    r"""Closed-form Wasserstein-2 distance between two Gaussians.

    .. math::
        W_2^2 = \|\mu_a - \mu_b\|^2 + \operatorname{tr}\big(\Sigma_a + \Sigma_b
        - 2 (\Sigma_b^{1/2} \Sigma_a \Sigma_b^{1/2})^{1/2}\big)

    Examples:
        >>> round(gaussian_w2(torch.ones(2), torch.eye(2), torch.zeros(2), torch.eye(2)), 6)
        1.414214
    """
    mean_a, cov_a, mean_b, cov_b = (t.double() for t in (mean_a, cov_a, mean_b, cov_b))
    root_b = sqrtm_psd(cov_b)
    cross = sqrtm_psd(root_b @ cov_a @ root_b)
    squared = (mean_a - mean_b).pow(2).sum() + torch.trace(cov_a + cov_b - 2 * cross)
    return float(squared.clamp_min(0).sqrt())


def frechet_distance(samples: Tensor, reference: Tensor) -> Tensor:
    r"""Fréchet distance :math:`d` between Gaussians fitted to both sets (sample means, unbiased
    sample covariances), which is their closed-form W2 distance:

    .. math::
        d^2 = \|\mu_s - \mu_r\|^2
        + \operatorname{tr}\big(\Sigma_s + \Sigma_r - 2(\Sigma_r^{1/2}\Sigma_s\Sigma_r^{1/2})^{1/2}\big)

    The distance :math:`d` is returned, not :math:`d^2` (FID, by convention, reports :math:`d^2`
    of Inception features; the ``fid`` metrics use torchmetrics for that). Items of any shape are
    flattened.

    Args:
        samples: shape ``(num, ...)``.
        reference: shape ``(num_ref, ...)``, the same item shape.

    Examples:
        >>> reference = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0))
        >>> round(float(frechet_distance(reference + torch.tensor([3.0, 4.0]), reference)), 6)
        5.0
    """
    s, r = samples.double().flatten(1), reference.double().flatten(1)
    distance = gaussian_w2(
        s.mean(0),
        torch.cov(s.T).reshape(s.shape[1], s.shape[1]),
        r.mean(0),
        torch.cov(r.T).reshape(r.shape[1], r.shape[1]),
    )
    return torch.tensor(distance, dtype=torch.float64)


def mode_statistics(samples: Tensor, centres: Tensor, radius: float) -> tuple[Tensor, Tensor]:
    """Mode coverage and within-mode spread of a mixture.

    Returns:
        ``(coverage, spread)``: the share of modes that have at least one sample within
        ``radius`` of their centre, and the mean distance of those close samples to their centre.
    """
    distance = torch.cdist(samples.double(), centres.double())
    nearest, mode = distance.min(dim=1)
    close = nearest <= radius
    coverage = torch.tensor(torch.unique(mode[close]).numel() / centres.shape[0], dtype=torch.float64)
    spread = nearest[close].mean() if bool(close.any()) else torch.tensor(float("nan"), dtype=torch.float64)
    return coverage, spread


def moment_drift(samples: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
    """``(‖μ_s − μ_r‖, ‖Σ_s − Σ_r‖_F)``: how far the mean and the covariance have moved."""
    s, r = samples.double().flatten(1), reference.double().flatten(1)
    cov_s = torch.cov(s.T).reshape(s.shape[1], s.shape[1])
    cov_r = torch.cov(r.T).reshape(r.shape[1], r.shape[1])
    return (s.mean(0) - r.mean(0)).norm(), (cov_s - cov_r).norm()


def mmd_rbf(samples: Tensor, reference: Tensor, bandwidth: float | None = None) -> Tensor:
    r"""Unbiased squared maximum mean discrepancy with a Gaussian kernel
    :math:`k(x, y) = \exp(-\|x - y\|^2 / (2 h^2))`.

    .. math::
        \widehat{\mathrm{MMD}}^2 = \frac{1}{m(m-1)}\sum_{i \ne j} k(x_i, x_j)
        + \frac{1}{n(n-1)}\sum_{i \ne j} k(y_i, y_j) - \frac{2}{mn}\sum_{i,j} k(x_i, y_j)

    Args:
        samples: ``(m, d)``, ``m >= 2``.
        reference: ``(n, d)``, ``n >= 2``.
        bandwidth: ``h``; default the median distance between reference points.
    """
    x, y = samples.double().flatten(1), reference.double().flatten(1)
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"MMD needs at least 2 points per set, got {x.shape[0]} and {y.shape[0]}.")
    if bandwidth is None:
        distances = torch.cdist(y, y)
        bandwidth = float(distances[~torch.eye(len(y), dtype=torch.bool)].median())
    gamma = 1.0 / (2.0 * bandwidth**2)
    kxx, kyy, kxy = (torch.exp(-gamma * torch.cdist(a, b) ** 2) for a, b in ((x, x), (y, y), (x, y)))
    m, n = x.shape[0], y.shape[0]
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2 * kxy.mean()


def feature_diversity(
    features: Tensor,
    labels: Tensor | None = None,
    num_pairs: int = 300,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mean distance between randomly paired feature vectors (the diversity score of
    motion- and image-generation evaluations): larger is more diverse.

    With ``labels``, pairs are drawn within each label and the per-label means are averaged
    (how varied the samples of one condition are); labels with fewer than two samples are
    skipped, and ``nan`` is returned when none has two.

    Args:
        features: ``(num, dim)``.
        labels: ``(num,)`` integer labels, or ``None`` for pairs over the whole set.
        num_pairs: pairs drawn per set (per label with ``labels``).
        generator: the random pairing.
    """
    x = features.double().flatten(1)
    if labels is None:
        groups = [torch.arange(len(x))]
    else:
        groups = [torch.nonzero(labels == value).flatten() for value in labels.unique()]
    means = []
    for group in groups:
        if len(group) < 2:
            continue
        first = group[torch.randint(len(group), (num_pairs,), generator=generator)]
        offset = torch.randint(1, len(group), (num_pairs,), generator=generator)  # never the same item
        second = group[(torch.searchsorted(group, first) + offset) % len(group)]
        means.append((x[first] - x[second]).norm(dim=1).mean())
    if not means:
        return torch.tensor(float("nan"), dtype=torch.float64)
    return sum(means[1:], means[0]) / len(means)


def dispersion(samples: Tensor) -> Tensor:
    r"""The spread of a point cloud: the trace of its covariance (unbiased), the quantity whose
    ratio to generation 0's is the dispersion ratio of Qiao et al. (2026).

    Examples:
        >>> float(dispersion(torch.tensor([[0.0, 0.0], [2.0, 0.0]])))
        2.0
    """
    x = samples.double().flatten(1)
    return x.var(0, unbiased=True).sum() if len(x) > 1 else x.new_zeros(())


def tail_mass(samples: Tensor, reference: Tensor, low: float = 0.01, high: float = 0.99) -> Tensor:
    r"""The share of samples beyond the reference's ``low`` and ``high`` quantiles, per
    dimension, averaged over the dimensions: ``low + (1 - high)`` (0.02) for samples of the
    reference's distribution, falling toward 0 as the tails vanish (Shumailov et al. 2024).

    Examples:
        >>> reference = torch.arange(101.0)[:, None]
        >>> float(tail_mass(torch.tensor([[-5.0], [50.0], [200.0], [60.0]]), reference))
        0.5
    """
    x, r = samples.double().flatten(1), reference.double().flatten(1)
    bounds = torch.quantile(r, torch.tensor([low, high], dtype=torch.float64), dim=0)
    beyond = (x < bounds[0]) | (x > bounds[1])
    return beyond.double().mean()


def mode_weights(samples: Tensor, centres: Tensor) -> Tensor:
    r"""The share of samples whose nearest centre is each mode, shape ``(k,)``.

    Examples:
        >>> mode_weights(torch.tensor([[0.1], [9.0], [11.0], [10.2]]), torch.tensor([[0.0], [10.0]])).tolist()
        [0.25, 0.75]
    """
    x, c = samples.double().flatten(1), centres.double().flatten(1)
    nearest = torch.cdist(x, c).argmin(1)
    return torch.bincount(nearest, minlength=len(c)).double() / max(len(x), 1)


def min_mode_weight(samples: Tensor, centres: Tensor) -> Tensor:
    r"""The smallest share of samples whose nearest centre is a given mode: ``1/k`` for ``k``
    equally weighted modes, ``0`` once a mode is lost.

    Examples:
        >>> centres = torch.tensor([[0.0], [10.0]])
        >>> float(min_mode_weight(torch.tensor([[0.1], [9.0], [11.0], [10.2]]), centres))
        0.25
    """
    return mode_weights(samples, centres).min()
