"""The dataset and sampler that serve a generation's training set.

:class:`MixedDataset` concatenates the real and synthetic items a
:class:`~sclc_lightning.mixing.policies.GenerationPlan` chose, lazily;
:class:`GenerationSampler` draws the fixed budget and splits it over DDP ranks.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler

from sclc_lightning.mixing.policies import GenerationPlan
from sclc_lightning.mixing.weighting import Weighted

__all__ = ["GenerationSampler", "MixedDataset"]


class MixedDataset(Dataset[Any]):
    """Real and synthetic items of one generation, concatenated without copying.

    Args:
        real: the user's real dataset (map-style).
        plan: which parts to serve.
        synthetic: synthetic datasets by generation (those named in ``plan``).
        weights: the weight of one item of each source (``-1``: the real data); given, every
            item comes as :class:`~sclc_lightning.mixing.weighting.Weighted` ``(item, weight)``.

    Attributes:
        num_real: the number of real items; indices ``[0, num_real)`` are real and the rest
            synthetic, which is how the share seen in training is measured.
    """

    def __init__(
        self,
        real: Dataset[Any],
        plan: GenerationPlan,
        synthetic: Mapping[int, Dataset[Any]],
        weights: Mapping[int, float] | None = None,
    ):
        self._parts: list[tuple[Dataset[Any], Tensor | None]] = []
        self._sources: list[int] = []  # -1: the real data; g: synthetic generation g
        if plan.use_real:
            self._parts.append((real, plan.real_indices))
            self._sources.append(-1)
        for g, rows in plan.synthetic:
            self._parts.append((synthetic[g], rows))
            self._sources.append(g)
        sizes = [len(ds) if rows is None else int(rows.numel()) for ds, rows in self._parts]  # type: ignore[arg-type]
        self._ends = list(torch.tensor(sizes, dtype=torch.int64).cumsum(0).tolist()) if sizes else []
        self.num_real = sizes[0] if plan.use_real else 0
        self.weights = None if weights is None else {source: float(weights[source]) for source in self._sources}

    @property
    def ends(self) -> list[int]:
        """Where each source's items end, in the order of :attr:`sources`."""
        return list(self._ends)

    @property
    def sources(self) -> list[int]:
        """The sources of the set in order (``-1``: the real data; ``g``: synthetic generation ``g``)."""
        return list(self._sources)

    def weight_of(self, source: int) -> float | None:
        """The weight of one item of ``source``, ``None`` when items carry no weight."""
        return None if self.weights is None else self.weights[source]

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def _find(self, index: int) -> tuple[int, int]:
        """The part holding item ``index`` and the row in that part's dataset."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a mixed set of {len(self)} items")
        part = bisect.bisect_right(self._ends, index)
        local = index - (self._ends[part - 1] if part else 0)
        rows = self._parts[part][1]
        return part, local if rows is None else int(rows[local])

    def locate(self, index: int) -> tuple[int, int]:
        """Where item ``index`` comes from: ``(-1, i)`` for real item ``i``, ``(g, i)`` for item
        ``i`` of synthetic generation ``g``."""
        part, row = self._find(index)
        return self._sources[part], row

    def __getitem__(self, index: int) -> Any:
        part, row = self._find(index)
        item = self._parts[part][0][row]
        if self.weights is None:
            return item
        return Weighted(item, self.weights[self._sources[part]])


class GenerationSampler(DistributedSampler):  # type: ignore[type-arg]
    """Serves one rank its share of a generation's global draw.

    Every rank builds the same global ``order`` (seeded by seed and generation); rank ``r``
    takes ``order[r::num_replicas]``. Being a ``DistributedSampler``, Lightning leaves it as is
    instead of wrapping it, so the split is ours and is the same with or without DDP.

    ``skip``: the first items of this rank's share to leave out, when a generation continues
    from a checkpoint saved in its middle. The length stays the whole share, as for Lightning's
    resumable loaders: the fit's progress counts the batches already trained.
    """

    def __init__(self, order: Tensor, num_replicas: int, rank: int, skip: int = 0):
        if order.numel() % num_replicas:
            raise ValueError(f"The draw of {order.numel()} items does not split evenly over {num_replicas} ranks.")
        super().__init__(range(order.numel()), num_replicas=num_replicas, rank=rank, shuffle=False)  # type: ignore[arg-type]
        self.order = order
        if not 0 <= skip <= order.numel() // num_replicas:
            raise ValueError(f"Cannot skip {skip} of a share of {order.numel() // num_replicas} items.")
        self.skip = skip

    def indices(self) -> Tensor:
        """This rank's item indices, in order."""
        return self.order[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.skip :].tolist())

    def __len__(self) -> int:
        return self.order.numel() // self.num_replicas
