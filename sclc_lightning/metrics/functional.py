"""Metrics between point clouds, as pure functions."""

from __future__ import annotations

import torch
from torch import Tensor

from sclc_lightning.models.gaussian import gaussian_w2

__all__ = ["frechet_distance", "mode_statistics"]


def frechet_distance(samples: Tensor, reference: Tensor) -> float:
    r"""Fréchet distance: the closed-form W2 distance between Gaussians fitted to both sets.

    .. math::
        d^2 = \|\mu_s - \mu_r\|^2
        + \operatorname{tr}\big(\Sigma_s + \Sigma_r - 2(\Sigma_r^{1/2}\Sigma_s\Sigma_r^{1/2})^{1/2}\big)

    Args:
        samples: shape ``(num, dim)``.
        reference: shape ``(num_ref, dim)``.
    """
    s, r = samples.double().flatten(1), reference.double().flatten(1)
    return gaussian_w2(
        s.mean(0),
        torch.cov(s.T).reshape(s.shape[1], s.shape[1]),
        r.mean(0),
        torch.cov(r.T).reshape(r.shape[1], r.shape[1]),
    )


def mode_statistics(samples: Tensor, centres: Tensor, radius: float) -> tuple[float, float]:
    """Mode coverage and within-mode spread of a mixture.

    Returns:
        ``(coverage, spread)``: the share of modes that have at least one sample within
        ``radius`` of their centre, and the mean distance of those close samples to their centre.
    """
    distance = torch.cdist(samples.double(), centres.double())
    nearest, mode = distance.min(dim=1)
    close = nearest <= radius
    covered = torch.unique(mode[close]).numel()
    spread = float(nearest[close].mean()) if bool(close.any()) else float("nan")
    return covered / centres.shape[0], spread
