"""Which items form a generation's training set, and the dataset and sampler that serve them.

:func:`plan_generation` is a pure function of the mode, the generation and the seed;
:class:`MixedDataset` concatenates the chosen real and synthetic items lazily;
:class:`GenerationSampler` draws the fixed budget and splits it over DDP ranks.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler

from sclc_lightning.data.budget import make_generator

__all__ = ["MODES", "GenerationPlan", "GenerationSampler", "MixedDataset", "plan_generation"]

MODES = ("augment", "accumulate", "replace", "fresh")


@dataclass(frozen=True)
class GenerationPlan:
    """The parts of one generation's training set.

    Attributes:
        generation: the generation that trains on this set.
        real_indices: indices into the real dataset, ``None`` for all of it.
        use_real: whether real items are part of the set at all.
        synthetic: ``(generation, rows)`` pairs: rows of that generation's synthetic set,
            ``None`` for all its rows.
    """

    generation: int
    use_real: bool
    real_indices: Tensor | None = None
    synthetic: tuple[tuple[int, Tensor | None], ...] = field(default_factory=tuple)

    def num_real(self, real_size: int) -> int:
        """Number of real items in the set."""
        if not self.use_real:
            return 0
        return real_size if self.real_indices is None else int(self.real_indices.numel())

    def num_synthetic(self, synthetic_counts: Mapping[int, int]) -> int:
        """Number of synthetic items in the set."""
        return sum(synthetic_counts[g] if rows is None else int(rows.numel()) for g, rows in self.synthetic)


def plan_generation(
    mode: str,
    generation: int,
    real_size: int,
    synthetic_counts: Mapping[int, int],
    seed: int,
    real_per_generation: int | None = None,
    max_synthetic: int | None = None,
) -> GenerationPlan:
    """The training set of ``generation`` under ``mode``.

    Synthetic set ``g`` (``g >= 1``) is the one sampled from the model at the end of
    generation ``g - 1``; ``synthetic_counts`` maps each existing set to its size.

    - ``augment``: all real items and synthetic set ``generation``.
    - ``accumulate``: all real items and synthetic sets ``1..generation``; when
      ``max_synthetic`` is set and exceeded, a uniform random subset of that many of their items.
    - ``replace``: synthetic set ``generation`` only (real items in generation 0).
    - ``fresh``: a new uniform random subset of ``real_per_generation`` real items, and
      synthetic set ``generation``.

    Examples:
        >>> plan = plan_generation("accumulate", 2, 10, {1: 5, 2: 5}, seed=0)
        >>> [g for g, _ in plan.synthetic]
        [1, 2]
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
    real_indices = None
    if mode == "fresh":
        if real_per_generation is None or not 0 < real_per_generation <= real_size:
            raise ValueError(
                f"`real_per_generation` must be in [1, {real_size}] (the size of the real pool),"
                f" got {real_per_generation!r}."
            )
        gen = make_generator(seed, "mix", generation)
        real_indices = torch.randperm(real_size, generator=gen)[:real_per_generation]
    if generation == 0:
        return GenerationPlan(0, True, real_indices)
    if mode == "accumulate":
        parts: list[tuple[int, Tensor | None]] = [
            (g, None) for g in range(1, generation + 1) if synthetic_counts.get(g, 0) > 0
        ]
        total = sum(synthetic_counts[g] for g, _ in parts)
        if max_synthetic is not None and total > max_synthetic:
            gen = make_generator(seed, "mix", generation)
            keep = torch.randperm(total, generator=gen)[:max_synthetic].sort().values
            capped: list[tuple[int, Tensor | None]] = []
            offset = 0
            for g, _ in parts:
                count = synthetic_counts[g]
                inside = keep[(keep >= offset) & (keep < offset + count)] - offset
                if inside.numel():
                    capped.append((g, inside))
                offset += count
            parts = capped
        return GenerationPlan(generation, True, None, tuple(parts))
    latest: tuple[tuple[int, Tensor | None], ...] = (
        ((generation, None),) if synthetic_counts.get(generation, 0) > 0 else ()
    )
    return GenerationPlan(generation, mode != "replace", real_indices, latest)


class MixedDataset(Dataset[Any]):
    """Real and synthetic items of one generation, concatenated without copying.

    Args:
        real: the user's real dataset (map-style).
        plan: which parts to serve.
        synthetic: synthetic datasets by generation (those named in ``plan``).

    Attributes:
        num_real: the number of real items; indices ``[0, num_real)`` are real and the rest
            synthetic, which is how the share seen in training is measured.
    """

    def __init__(self, real: Dataset[Any], plan: GenerationPlan, synthetic: Mapping[int, Dataset[Any]]):
        self._parts: list[tuple[Dataset[Any], Tensor | None]] = []
        if plan.use_real:
            self._parts.append((real, plan.real_indices))
        for g, rows in plan.synthetic:
            self._parts.append((synthetic[g], rows))
        sizes = [len(ds) if rows is None else int(rows.numel()) for ds, rows in self._parts]  # type: ignore[arg-type]
        self._ends = list(torch.tensor(sizes, dtype=torch.int64).cumsum(0).tolist()) if sizes else []
        self.num_real = sizes[0] if plan.use_real else 0

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a mixed set of {len(self)} items")
        part = bisect.bisect_right(self._ends, index)
        local = index - (self._ends[part - 1] if part else 0)
        dataset, rows = self._parts[part]
        return dataset[local if rows is None else int(rows[local])]


class GenerationSampler(DistributedSampler):  # type: ignore[type-arg]
    """Serves one rank its share of a generation's global draw.

    Every rank builds the same global ``order`` (seeded by seed and generation); rank ``r``
    takes ``order[r::num_replicas]``. Being a ``DistributedSampler``, Lightning leaves it as is
    instead of wrapping it, so the split is ours and is the same with or without DDP.
    """

    def __init__(self, order: Tensor, num_replicas: int, rank: int):
        if order.numel() % num_replicas:
            raise ValueError(f"The draw of {order.numel()} items does not split evenly over {num_replicas} ranks.")
        super().__init__(range(order.numel()), num_replicas=num_replicas, rank=rank, shuffle=False)  # type: ignore[arg-type]
        self.order = order

    def indices(self) -> Tensor:
        """This rank's item indices, in order."""
        return self.order[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.order.numel() // self.num_replicas
