r"""Optimal-transport and random-pairing correctors (Gillman et al. 2024, §5 and App. C.6).

Both draw :math:`m` fresh target points :math:`z_j` (from the real data or a user target
sampler), pair each synthetic point :math:`y_i` with one of them, and return

.. math::
    \pi_\gamma(y_i) = \frac{y_i}{1+\gamma} + \frac{\gamma\, m(y_i)}{1+\gamma}.

The optimal-transport corrector pairs by the one-to-one matching of minimum total Euclidean
distance (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``); random pairing uses a
random permutation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from sclc_lightning.correctors._callables import resolve_callable
from sclc_lightning.correctors.base import Corrector, register_corrector
from sclc_lightning.data.items import SyntheticBatch
from sclc_lightning.data.real import RealData

__all__ = ["OptimalTransportCorrector", "RandomPairingCorrector", "min_distance_matching"]

TargetSampler = Callable[[int, torch.Generator], Tensor]


def min_distance_matching(points: Tensor, targets: Tensor) -> Tensor:
    """Index ``j = match[i]`` of the target paired with point ``i`` under the one-to-one
    matching that minimises the total Euclidean distance.

    Args:
        points: shape ``(m, ...)``.
        targets: shape ``(m, ...)``.

    Returns:
        int64 tensor of shape ``(m,)``, a permutation of ``range(m)``.

    Examples:
        >>> min_distance_matching(torch.tensor([[0.0], [10.0]]), torch.tensor([[9.0], [1.0]])).tolist()
        [1, 0]
    """
    if points.shape[0] != targets.shape[0]:
        raise ValueError(f"Need as many targets as points, got {targets.shape[0]} and {points.shape[0]}.")
    cost = torch.cdist(points.flatten(1).double(), targets.flatten(1).double()).numpy()
    rows, cols = linear_sum_assignment(cost)
    match = np.empty(len(rows), dtype=np.int64)
    match[rows] = cols
    return torch.from_numpy(match)


class _PairingCorrector(Corrector):
    def __init__(self, strength: float = 1.0, target_sampler: TargetSampler | str | None = None) -> None:
        super().__init__(strength)
        self.target_sampler = resolve_callable(target_sampler, "target_sampler")

    def _targets(self, num: int, generator: torch.Generator, reference: RealData) -> Tensor:
        if self.target_sampler is not None:
            targets: Tensor = self.target_sampler(num, generator)
            return targets
        return reference.sample(num, generator).data

    def _pairing(self, points: Tensor, targets: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def correct(
        self, batch: SyntheticBatch, *, generation: int, generator: torch.Generator, reference: RealData
    ) -> Tensor:
        if len(batch) == 0:
            return batch.data
        targets = self._targets(len(batch), generator, reference)
        if targets.shape != batch.data.shape:
            raise ValueError(
                f"{type(self).__name__}: target points have shape {tuple(targets.shape)},"
                f" synthetic points {tuple(batch.data.shape)}."
            )
        return self.mix(batch.data, targets[self._pairing(batch.data, targets, generator)])


@register_corrector("optimal_transport")
class OptimalTransportCorrector(_PairingCorrector):
    r"""Pull each synthetic point toward its minimum-total-distance match among fresh targets.

    Args:
        strength: :math:`\gamma`.
        target_sampler: ``f(num, generator) -> Tensor (num, ...)`` drawing from the target
            distribution (or an import path to one); ``None`` draws fresh real points.

    The Hungarian algorithm costs :math:`O(m^3)` for :math:`m = \lfloor \lambda n \rfloor`
    points: fine for the toy sizes of the paper (tens to a few thousand points).
    """

    def _pairing(self, points: Tensor, targets: Tensor, generator: torch.Generator) -> Tensor:
        return min_distance_matching(points, targets)


@register_corrector("random_pairing")
class RandomPairingCorrector(_PairingCorrector):
    r"""Like :class:`OptimalTransportCorrector` with a uniformly random pairing (App. C.6)."""

    def _pairing(self, points: Tensor, targets: Tensor, generator: torch.Generator) -> Tensor:
        return torch.randperm(points.shape[0], generator=generator)
