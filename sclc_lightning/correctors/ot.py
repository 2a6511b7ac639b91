r"""Optimal-transport and random-pairing correctors (Gillman et al. 2024, §5 and App. C.6).

Both draw :math:`m` fresh target points :math:`z_j` (from the real data or a user target
sampler), pair each synthetic point :math:`y_i` with one of them, and return

.. math::
    \pi_\gamma(y_i) = \frac{y_i}{1+\gamma} + \frac{\gamma\, m(y_i)}{1+\gamma}.

The optimal-transport corrector pairs by the one-to-one matching of minimum total Euclidean
distance (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``); random pairing uses a
random permutation.

On tokens (integer or boolean data, e.g. token ids) averaging has no meaning: the pairing uses
the Hamming distance (positions that differ), and the blend takes each position's token from the
paired target with probability :math:`\gamma/(1+\gamma)` (:meth:`~sclc_lightning.correctors.Corrector.mix`),
so a corrected sequence is on average :math:`1/(1+\gamma)` as far from its target, in Hamming
distance, as the generated one was; :math:`\gamma = \infty` gives the target sequence.

With conditional items (a class label per item) both pair within each condition value: the
targets of the synthetic points labelled ``c`` are real points labelled ``c``, so a corrected
point keeps a label that matches its data. Conditions that are not one hashable label per item
(text, embeddings) are refused unless ``per_condition=False`` (pairing across all of them).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from sclc_lightning._callables import resolve_callable
from sclc_lightning._checks import plain_numbers
from sclc_lightning.correctors.base import Corrector, register_corrector
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.items.real import RealData

__all__ = ["OptimalTransportCorrector", "RandomPairingCorrector", "min_distance_matching"]

TargetSampler = Callable[[int, torch.Generator], Tensor]


def pairwise_distance(points: Tensor, targets: Tensor) -> Tensor:
    """Distances ``(m, k)`` between the rows of ``points (m, ...)`` and ``targets (k, ...)``:
    Euclidean for floats, Hamming (the number of positions that differ) for tokens.

    Examples:
        >>> pairwise_distance(torch.tensor([[1, 2, 3]]), torch.tensor([[1, 2, 3], [0, 2, 0]])).tolist()
        [[0.0, 2.0]]
    """
    if points.is_floating_point():
        return torch.cdist(points.flatten(1).double(), targets.flatten(1).double())
    a, b = points.flatten(1), targets.flatten(1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"Token sequences of {a.shape[1]} and {b.shape[1]} positions cannot be compared.")
    distance = torch.zeros(a.shape[0], b.shape[0], dtype=torch.float64)
    for start in range(0, a.shape[0], 256):  # (256, k, positions) booleans at a time
        distance[start : start + 256] = (a[start : start + 256, None, :] != b[None, :, :]).sum(-1).double()
    return distance


def min_distance_matching(points: Tensor, targets: Tensor) -> Tensor:
    """Index ``j = match[i]`` of the target paired with point ``i`` under the one-to-one
    matching that minimises the total distance (:func:`pairwise_distance`: Euclidean, or
    Hamming for tokens).

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
    cost = pairwise_distance(points, targets).numpy()
    rows, cols = linear_sum_assignment(cost)
    match = np.empty(len(rows), dtype=np.int64)
    match[rows] = cols
    return torch.from_numpy(match)


def _labels(conditions: Any, what: str, name: str) -> list[Hashable]:
    """One hashable label per item of ``conditions`` (a 1-D tensor or a sequence)."""
    if isinstance(conditions, Tensor):
        if conditions.dim() != 1:
            raise ValueError(
                f"{name} pairs points within each condition value and needs one label per item, got {what}"
                f" conditions of shape {tuple(conditions.shape)}; set per_condition=False to pair across"
                " all of them (each corrected point keeps its own condition)."
            )
        return list(conditions.tolist())
    labels = list(conditions)
    if not all(isinstance(label, Hashable) for label in labels):
        raise ValueError(
            f"{name} pairs points within each condition value, but the {what} conditions are not"
            f" labels ({type(labels[0]).__name__}); set per_condition=False to pair across all of them."
        )
    return labels


@plain_numbers
class _PairingCorrector(Corrector):
    supports = frozenset({"continuous", "discrete", "conditional"})
    deciding = ("target_sampler", "per_condition")

    def __init__(
        self, strength: float = 1.0, target_sampler: TargetSampler | str | None = None, per_condition: bool = True
    ) -> None:
        super().__init__(strength)
        from sclc_lightning._checks import check_arguments

        check_arguments(_PairingCorrector, locals())
        self.target_sampler = resolve_callable(target_sampler, "target_sampler")
        self.per_condition = bool(per_condition)

    def check_items(self, reference: RealData) -> None:
        super().check_items(reference)
        codec, name = reference.codec, type(self).__name__
        if codec.condition_key is None or not self.per_condition:
            return
        if self.target_sampler is not None:
            raise ValueError(
                f"{name}: `target_sampler` draws targets without conditions, but the items are conditional;"
                " set per_condition=False to pair across conditions (each point keeps its own condition)."
            )
        condition = codec.field(reference.items([0])[0], codec.condition_key)
        if isinstance(condition, Tensor) and condition.dim() != 0:
            raise ValueError(
                f"{name} pairs points within each condition value and needs one label per item, but the"
                f" condition field {codec.condition_key!r} holds tensors of shape {tuple(condition.shape)}; set"
                " per_condition=False to pair across all of them (each corrected point keeps its own condition)."
            )

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
        if batch.conditions is None or not self.per_condition:
            targets = self._targets(len(batch), generator, reference)
            self._check_shape(targets, batch.data)
            return self.mix(batch.data, targets[self._pairing(batch.data, targets, generator)], generator)
        return self.mix(batch.data, self._targets_by_condition(batch, generator, reference), generator)

    def _check_shape(self, targets: Tensor, points: Tensor) -> None:
        if targets.shape != points.shape:
            raise ValueError(
                f"{type(self).__name__}: target points have shape {tuple(targets.shape)},"
                f" synthetic points {tuple(points.shape)}."
            )

    def _targets_by_condition(self, batch: SyntheticBatch, generator: torch.Generator, reference: RealData) -> Tensor:
        """The paired target of every point, drawn and paired among real points of its label."""
        name = type(self).__name__
        if self.target_sampler is not None:
            raise ValueError(
                f"{name}: `target_sampler` draws targets without conditions, but the items are conditional;"
                " set per_condition=False to pair across conditions (each point keeps its own condition)."
            )
        labels = _labels(batch.conditions, "synthetic", name)
        real_labels = _labels(reference.conditions(), "real", name)
        pools: dict[Hashable, list[int]] = {}
        for index, label in enumerate(real_labels):
            pools.setdefault(label, []).append(index)
        groups: dict[Hashable, list[int]] = {}
        for index, label in enumerate(labels):
            groups.setdefault(label, []).append(index)
        paired = torch.empty_like(batch.data)
        for label in sorted(groups, key=repr):
            rows = torch.tensor(groups[label])
            pool = pools.get(label)
            if not pool:
                raise ValueError(
                    f"{name}: {len(rows)} synthetic point(s) have condition {label!r}, which no real item has;"
                    " set per_condition=False to pair across conditions."
                )
            if len(rows) <= len(pool):
                pick = torch.randperm(len(pool), generator=generator)[: len(rows)]
            else:  # more points of this label than real items with it: targets repeat
                pick = torch.randint(len(pool), (len(rows),), generator=generator)
            targets = reference.batch(torch.tensor(pool)[pick]).data
            self._check_shape(targets, batch.data[rows])
            paired[rows] = targets[self._pairing(batch.data[rows], targets, generator)].to(paired.dtype)
        return paired


@register_corrector("optimal_transport")
class OptimalTransportCorrector(_PairingCorrector):
    r"""Pull each synthetic point toward its minimum-total-distance match among fresh targets.

    Args:
        strength: :math:`\gamma`.
        target_sampler: ``f(num, generator) -> Tensor (num, ...)`` drawing from the target
            distribution (or an import path to one); ``None`` draws fresh real points.
        per_condition: with conditional items, match each point only to real points of its
            condition value (its class); ``False`` matches across all of them.

    The Hungarian algorithm costs :math:`O(m^3)` for :math:`m = \lfloor \lambda n \rfloor`
    points: fine for the toy sizes of the paper (tens to a few thousand points).
    """

    def _pairing(self, points: Tensor, targets: Tensor, generator: torch.Generator) -> Tensor:
        return min_distance_matching(points, targets)


@register_corrector("random_pairing")
class RandomPairingCorrector(_PairingCorrector):
    r"""Like :class:`OptimalTransportCorrector` with a uniformly random pairing (App. C.6).

    Args:
        strength: :math:`\gamma`.
        target_sampler: ``f(num, generator) -> Tensor (num, ...)`` drawing from the target
            distribution (or an import path to one); ``None`` draws fresh real points.
        per_condition: with conditional items, pair each point only with real points of its
            condition value (its class); ``False`` pairs across all of them.
    """

    def _pairing(self, points: Tensor, targets: Tensor, generator: torch.Generator) -> Tensor:
        return torch.randperm(points.shape[0], generator=generator)
