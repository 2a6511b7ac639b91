r"""Per-source weights of a generation's training set (He, Xu & Cheng 2025: fresh real data
weighted :math:`w`, synthetic data :math:`1 - w`).

A policy's :class:`~sclc_lightning.mixing.policies.GenerationPlan` may give each source of the
mixed set a *share* of the fit: ``{-1: w, g: ...}``, ``-1`` the real data and ``g`` synthetic
generation ``g``. The loop turns the shares into one weight per item, the source's share spread
over its items and scaled so that the weights average 1 over the set (an unweighted set has
every weight 1):

.. math:: \omega_i = s_{\mathrm{source}(i)} \cdot N / N_{\mathrm{source}(i)}

and delivers them one of two ways, by what the module declares:

- **as a field of every item** (a module with ``reads_item_weights = True``, all the built-in
  models): each item comes as :class:`Weighted` ``(item, weight)`` and each batch, the user's
  collate function applied to the items, as ``Weighted(batch, weights)``. The exact fits become
  weighted estimators, the gradient-trained models weighted losses (:func:`weighted_mean`).
  :func:`split_weights` reads any batch: ``(batch, None)`` in a generation without weights.
- **as sampling probabilities** (any other module): the generation's draw takes from each source
  its share of the budget (:func:`weighted_order`), and the items come as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import Tensor

from sclc_lightning._checks import is_number
from sclc_lightning.mixing.budget import budget_order

__all__ = [
    "Weighted",
    "WeightedCollate",
    "check_shares",
    "describe_shares",
    "item_weights",
    "reads_item_weights",
    "shares_of",
    "split_weights",
    "weighted_mean",
    "weighted_order",
]


class Weighted(NamedTuple):
    """An item (or a batch) and its weight (or the batch's weights, shape ``(batch,)``)."""

    item: Any
    weight: Any


def split_weights(batch: Any) -> tuple[Any, Tensor | None]:
    """``(batch, weights)`` of a training batch: the weights of a :class:`Weighted` batch as a
    float tensor, ``None`` for a batch without weights.

    Examples:
        >>> import torch
        >>> split_weights(torch.ones(2, 3))[1] is None
        True
        >>> data, weights = split_weights(Weighted(torch.ones(2, 3), torch.tensor([0.5, 1.5])))
        >>> tuple(data.shape), weights.tolist()
        ((2, 3), [0.5, 1.5])
    """
    if isinstance(batch, Weighted):
        return batch.item, torch.as_tensor(batch.weight, dtype=torch.float32)
    return batch, None


def weighted_mean(values: Tensor, weights: Tensor | None) -> Tensor:
    r"""The mean of per-item ``values`` (shape ``(batch, ...)``, averaged over the other
    dimensions first), each item counted with its weight: :math:`\frac1B\sum_i \omega_i v_i`,
    an unbiased estimate of the weighted risk since the weights average 1 over the set;
    ``weights=None``: ``values.mean()``.

    Examples:
        >>> import torch
        >>> float(weighted_mean(torch.tensor([1.0, 3.0]), torch.tensor([0.5, 1.5])))
        2.5
    """
    if weights is None:
        return values.mean()
    per_item = values.reshape(values.shape[0], -1).mean(1)
    return (per_item * weights.to(per_item)).sum() / per_item.shape[0]


def check_shares(shares: Any, sources: Sequence[int], sizes: Mapping[int, int]) -> dict[int, float]:
    """The plan's ``shares`` checked and normalised to sum 1.

    Args:
        shares: ``{source: share}`` as the policy gave it.
        sources: the sources of the plan (``-1`` for the real data, ``g`` for synthetic
            generation ``g``).
        sizes: the number of items of each source in the set.

    Raises:
        ValueError: a source missing or not in the plan, a share that is not a finite number
            >= 0, shares summing to 0, or a share > 0 on a source without items.

    Examples:
        >>> check_shares({-1: 3, 1: 1}, [-1, 1], {-1: 10, 1: 10})
        {-1: 0.75, 1: 0.25}
    """
    if not isinstance(shares, Mapping):
        raise ValueError(f"A plan's `shares` must be a mapping {{source: share}}, got {type(shares).__name__}.")
    if sorted(shares) != sorted(sources):
        raise ValueError(
            f"A plan's `shares` must name each source of its set once ({sorted(sources)}: -1 is the real"
            f" data, g synthetic generation g), got {sorted(shares, key=str)}."
        )
    for source, share in shares.items():
        if not is_number(share) or not 0 <= float(share) < math.inf:
            raise ValueError(
                f"A plan's share of source {source} must be a finite number >= 0 (a Python or NumPy number),"
                f" got {share!r}."
            )
        if share > 0 and sizes[source] == 0:
            raise ValueError(f"A plan gives source {source} the share {share!r}, but it has no items in the set.")
    total = float(sum(float(s) for s in shares.values()))
    if total <= 0:
        raise ValueError(f"A plan's shares sum to {total:g}; at least one source must have a share > 0.")
    return {int(source): float(share) / total for source, share in shares.items()}


def item_weights(shares: Mapping[int, float], sizes: Mapping[int, int]) -> dict[int, float]:
    r"""The weight of one item of each source, :math:`s \cdot N / N_s`: they average 1 over the
    set (``shares`` normalised to sum 1; a source without items gets 0).

    Examples:
        >>> item_weights({-1: 0.5, 1: 0.5}, {-1: 30, 1: 10})
        {-1: 0.6666666666666666, 1: 2.0}
    """
    total = sum(sizes.values())
    return {source: share * total / sizes[source] if sizes[source] else 0.0 for source, share in shares.items()}


@contextmanager
def shares_of(policy: Any, generation: int) -> Iterator[None]:
    """Name the policy and the generation in a refusal of a plan's shares."""
    try:
        yield
    except ValueError as err:
        name = getattr(policy, "name", "") or type(policy).__name__
        raise ValueError(f"Mixing policy {name!r}, generation {generation}: {err}") from None


def _allot(shares: Sequence[float], total: int) -> list[int]:
    """``total`` split in proportion to ``shares`` (summing to 1), largest remainders first."""
    exact = [share * total for share in shares]
    counts = [math.floor(value) for value in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def weighted_order(ends: Sequence[int], shares: Sequence[float], total: int, generator: torch.Generator) -> Tensor:
    """A generation's draw of ``total`` indices with each source's share of it: the sources are
    the consecutive index ranges ending at ``ends``; source ``i`` gets ``shares[i] * total``
    draws (largest remainders rounding), spread evenly over its items as :func:`budget_order`
    spreads them, and the whole draw is shuffled.

    Examples:
        >>> import torch
        >>> order = weighted_order([4, 6], [0.25, 0.75], 8, torch.Generator().manual_seed(0))
        >>> int((order < 4).sum()), int((order >= 4).sum())
        (2, 6)
    """
    counts = _allot(shares, total)
    parts: list[Tensor] = []
    start = 0
    for end, count in zip(ends, counts):
        if count:
            parts.append(start + budget_order(end - start, count, generator))
        start = end
    order = torch.cat(parts)
    return order[torch.randperm(order.numel(), generator=generator)]


def describe_shares(shares: Mapping[int, float]) -> str:
    """The shares in words.

    Examples:
        >>> describe_shares({-1: 0.618, 3: 0.382})
        'real 0.618, generation 3 0.382'
    """
    return ", ".join(
        f"{'real' if source < 0 else f'generation {source}'} {share:.3g}" for source, share in shares.items()
    )


def reads_item_weights(module: Any) -> bool:
    """Whether ``module`` declares ``reads_item_weights = True`` (any other value: it does not).

    Raises:
        TypeError: the attribute is set to something other than a bool.
    """
    value = getattr(module, "reads_item_weights", False)
    if not isinstance(value, bool):
        raise TypeError(
            f"{type(module).__name__}.reads_item_weights must be True or False (whether its training reads"
            f" each item's weight, sclc_lightning.mixing.split_weights), got {value!r}."
        )
    return value


class WeightedCollate:
    """The user's collate function, lifted to :class:`Weighted` items: ``Weighted(collate(items),
    weights)``; items without weights are collated as they are."""

    def __init__(self, collate_fn: Callable[[list[Any]], Any]) -> None:
        self.collate_fn = collate_fn

    def __call__(self, items: list[Any]) -> Any:
        if items and isinstance(items[0], Weighted):
            weights = torch.tensor([float(item.weight) for item in items], dtype=torch.float32)
            return Weighted(self.collate_fn([item.item for item in items]), weights)
        return self.collate_fn(items)
