"""Pure functions behind the loop: counts, rank shares and the fixed training budget.

Nothing here needs a Trainer; the callback only wires these into hooks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import Tensor

__all__ = [
    "TrainingBudget",
    "budget_order",
    "num_synthetic",
    "rank_slice",
    "resolve_budget",
]


def num_synthetic(synthetic_fraction: float, n: int) -> int:
    r"""Number of synthetic points per generation, :math:`\lfloor \lambda n \rfloor`.

    The product is taken on the decimal value of ``synthetic_fraction`` so that, e.g.,
    ``num_synthetic(0.29, 100) == 29`` although ``0.29 * 100 < 29`` in binary floating point.

    Examples:
        >>> num_synthetic(0.5, 51)
        25
    """
    if not math.isfinite(synthetic_fraction) or synthetic_fraction < 0:
        raise ValueError(f"`synthetic_fraction` must be a finite number >= 0, got {synthetic_fraction!r}.")
    return math.floor(Fraction(repr(float(synthetic_fraction))) * n)


def rank_slice(total: int, world_size: int, rank: int) -> slice:
    """The contiguous share of ``total`` items that ``rank`` produces.

    The first ``total % world_size`` ranks produce one item more; the shares cover
    ``range(total)`` exactly once.

    Examples:
        >>> [rank_slice(5, 2, r) for r in range(2)]
        [slice(0, 3, None), slice(3, 5, None)]
    """
    base, extra = divmod(total, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


@dataclass(frozen=True)
class TrainingBudget:
    """How many samples one generation trains on.

    Attributes:
        requested: the number asked for (``None``: one pass over the mixed set).
        total: samples drawn, summed over ranks.
        per_rank: samples each rank trains on.
        batches_per_rank: optimizer micro-batches per rank.
        with_replacement: ``total`` exceeds the size of the mixed set, so the draw is a
            concatenation of several random permutations.
    """

    requested: int | None
    total: int
    per_rank: int
    batches_per_rank: int
    with_replacement: bool

    @property
    def exact(self) -> bool:
        """Whether ``total`` equals the requested number."""
        return self.requested is None or self.total == self.requested


def resolve_budget(
    requested: int | None, dataset_size: int, batch_size: int, world_size: int, drop_last: bool = False
) -> TrainingBudget:
    """Round a requested budget to whole batches on every rank.

    With a fixed budget every rank trains on ``k * batch_size`` samples, ``k`` the same on all
    ranks (so DDP never waits on a missing step) and ``k >= 1``; the total is the requested
    number rounded down to a multiple of ``batch_size * world_size`` (up when smaller than one
    such multiple). With ``requested=None`` the generation is one pass over the mixed set,
    the remainder of ``dataset_size / world_size`` dropped so that no item is seen twice.

    Examples:
        >>> resolve_budget(1000, 300, 32, 2).total
        960
    """
    if dataset_size <= 0:
        raise ValueError(f"The mixed training set is empty (size {dataset_size}).")
    if requested is None:
        per_rank = dataset_size // world_size
        if per_rank == 0:
            raise ValueError(f"The mixed training set has {dataset_size} items, fewer than the {world_size} ranks.")
        batches = per_rank // batch_size if drop_last else math.ceil(per_rank / batch_size)
        per_rank = batches * batch_size if drop_last else per_rank
        return TrainingBudget(None, per_rank * world_size, per_rank, batches, False)
    step = batch_size * world_size
    batches = max(1, requested // step)
    total = batches * step
    return TrainingBudget(requested, total, batches * batch_size, batches, total > dataset_size)


def budget_order(dataset_size: int, total: int, generator: torch.Generator) -> Tensor:
    """The global order of item indices one generation trains on.

    Concatenated random permutations of ``range(dataset_size)``, cut to ``total``: every item
    appears ``floor`` or ``ceil`` of ``total / dataset_size`` times. Whole passes see each part
    of the mixed set (real, synthetic) exactly in proportion to its size; the last partial pass
    is a uniform random subset, so the expected share is exact too.
    """
    repeats = math.ceil(total / dataset_size)
    perms = [torch.randperm(dataset_size, generator=generator) for _ in range(repeats)]
    return torch.cat(perms)[:total]
