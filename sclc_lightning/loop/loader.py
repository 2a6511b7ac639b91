"""The training loader of one generation: the planned mixed set, the fixed budget drawn from it,
and everything else (batch size, collate function, workers) from the user's own loader.

A user loader with ``persistent_workers=True`` gets one loader for the whole fit
(:class:`PersistentLoader`): its workers start once and serve every generation, as they would
serve every epoch of an ordinary fit, instead of starting again each generation (seconds to tens
of seconds with several workers under ``ddp_spawn``). Its sampler hands the workers keys that say
where each item is (the real data, or a synthetic generation and the digest of its record) and
its dataset (:class:`ItemsByKey`) reads them; the workers' random generators are seeded again at
each generation's first item, from the seed, the generation, the rank and the worker, so that a
resumed fit draws what an uninterrupted one does."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, get_worker_info

from sclc_lightning.items.codec import ItemCodec
from sclc_lightning.items.real import RealData
from sclc_lightning.mixing.budget import TrainingBudget, budget_order, resolve_budget
from sclc_lightning.mixing.dataset import GenerationSampler, MixedDataset
from sclc_lightning.mixing.policies import GenerationPlan
from sclc_lightning.mixing.weighting import (
    Weighted,
    WeightedCollate,
    check_shares,
    item_weights,
    shares_of,
    weighted_order,
)
from sclc_lightning.seeding import derive_seed, make_generator
from sclc_lightning.store.manifest import RunDirectoryError
from sclc_lightning.store.synthetic import SyntheticSet, SyntheticStore

__all__ = [
    "GenerationDraw",
    "GenerationLoader",
    "ItemsByKey",
    "KeyedSampler",
    "PersistentLoader",
    "draw_generation",
    "make_loader",
]


@dataclass(frozen=True)
class GenerationDraw:
    """One generation's training set and this rank's part of the budget drawn from it.

    Attributes:
        generation: the generation that trains on it.
        dataset: the mixed set (the real dataset itself when the plan is all real).
        num_real: real items in it; the rest are synthetic.
        budget: the budget, rounded to whole batches on every rank.
        sampler: this rank's share of the global draw.
        shares: each source's share of the fit (normalised), ``None`` when unweighted.
        weighted_items: the shares come as item weights (else as sampling probabilities).
    """

    generation: int
    dataset: Dataset[Any]
    num_real: int
    budget: TrainingBudget
    sampler: GenerationSampler
    shares: dict[int, float] | None = None
    weighted_items: bool = False

    @property
    def num_synthetic(self) -> int:
        return len(self.dataset) - self.num_real  # type: ignore[arg-type]


def draw_generation(
    trainer: pl.Trainer,
    template: DataLoader[Any],
    real: RealData,
    plan: GenerationPlan,
    synthetic: Mapping[int, Dataset[Any]],
    *,
    requested: int | None,
    seed: int,
    warn: bool,
    skip_batches: int = 0,
    warned: set[tuple[int | None, int]] | None = None,
    reads_weights: bool = False,
    policy: Any = None,
) -> GenerationDraw:
    """Build the mixed set of ``plan`` and draw ``requested`` samples from it (``None``: one
    pass), split over the ranks; ``warn``: say when the budget is not whole batches, once per
    (requested, trained) pair in ``warned`` (the fit's record, so that 100 generations with the
    same budget say it once); ``skip_batches``: batches of each rank's share already trained (a
    generation continued from a checkpoint saved in its middle); ``reads_weights``: the module
    reads item weights, so a weighted plan's shares come as item weights (else as sampling
    probabilities, :mod:`~sclc_lightning.mixing.weighting`); ``policy``: the policy that made the
    plan, named in a refusal of its shares."""
    shares, weights = _weighing(plan, len(real), synthetic, reads_weights, policy)
    dataset: Dataset[Any]
    if plan.is_all_real:
        dataset = real.dataset  # real data only: serve it without the mixing indirection
    else:
        dataset = MixedDataset(real.dataset, plan, synthetic, weights)
    size = len(dataset)  # type: ignore[arg-type]
    batch_size = template.batch_size or template.batch_sampler.batch_size  # type: ignore[union-attr]
    budget = resolve_budget(requested, size, batch_size, trainer.world_size, template.drop_last)
    said = warned if warned is not None else set()
    if warn and not budget.exact and (requested, budget.total) not in said:
        said.add((requested, budget.total))
        rank_zero_warn(
            f"Generation {plan.generation}: {requested} training samples is not a whole number of"
            f" batches ({batch_size}) x ranks ({trainer.world_size}); training on {budget.total}"
            " (said once for every generation with this budget)."
        )
    generator = make_generator(seed, "order", plan.generation)
    total = budget.per_rank * trainer.world_size if requested is None else budget.total
    if isinstance(dataset, MixedDataset) and shares is not None and weights is None:  # as sampling probabilities
        order = weighted_order(dataset.ends, [shares[s] for s in dataset.sources], total, generator)
    elif requested is None:
        order = torch.randperm(size, generator=generator)[:total]
    else:
        order = budget_order(size, total, generator)
    sampler = GenerationSampler(order, trainer.world_size, trainer.global_rank, skip=skip_batches * batch_size)
    num_real = plan.num_real(len(real))
    return GenerationDraw(plan.generation, dataset, num_real, budget, sampler, shares, weights is not None)


def _weighing(
    plan: GenerationPlan, real_size: int, synthetic: Mapping[int, Dataset[Any]], reads_weights: bool, policy: Any
) -> tuple[dict[int, float] | None, dict[int, float] | None]:
    """The plan's shares, checked and normalised, and the item weights when the module reads
    them; ``(None, None)`` for an unweighted plan."""
    if plan.shares is None:
        return None, None
    sizes = plan.sizes(real_size, {g: len(synthetic[g]) for g, _ in plan.synthetic})  # type: ignore[arg-type]
    with shares_of(policy, plan.generation):
        shares = check_shares(plan.shares, plan.sources(), sizes)
    return shares, item_weights(shares, sizes) if reads_weights else None


class GenerationLoader(DataLoader):  # type: ignore[type-arg]
    """A generation's DataLoader. Where it starts in a generation continued from a checkpoint
    saved in its middle is the loop's business (its sampler skips what was trained), so the
    state Lightning asks resumable loaders for is empty."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass


def make_loader(trainer: pl.Trainer, template: DataLoader[Any], draw: GenerationDraw, seed: int) -> DataLoader[Any]:
    """The DataLoader serving ``draw``, with the user loader's settings."""
    workers = template.num_workers
    return GenerationLoader(
        draw.dataset,
        batch_size=template.batch_size or template.batch_sampler.batch_size,  # type: ignore[union-attr]
        sampler=draw.sampler,
        collate_fn=WeightedCollate(template.collate_fn) if draw.weighted_items else template.collate_fn,
        num_workers=workers,
        pin_memory=template.pin_memory,
        drop_last=template.drop_last if draw.budget.requested is None else False,
        timeout=template.timeout,
        worker_init_fn=template.worker_init_fn,
        multiprocessing_context=template.multiprocessing_context if workers else None,
        generator=make_generator(seed, "loader", draw.generation, trainer.global_rank),
        prefetch_factor=template.prefetch_factor if workers else None,
        persistent_workers=template.persistent_workers if workers else False,
    )


Key = tuple[int, int, str, int, float | None]
"""``(generation trained, source, record digest, row, weight)``: source ``-1`` is the real data
(digest ``""``), else the synthetic generation whose record has that digest; ``weight``: the
item's weight when items carry one, else ``None``."""


class ItemsByKey(Dataset[Any]):
    """Every item a fit may train on, by :data:`Key`: one dataset for the whole fit.

    Args:
        real: the user's real dataset.
        root: the run directory (synthetic generations are opened from its manifest).
        codec: the structure of the items.
        seed: the loop's seed.
        rank: the global rank of the process that owns the loader.
    """

    def __init__(self, real: Dataset[Any], root: Path, codec: ItemCodec, seed: int, rank: int) -> None:
        self.real, self.root, self.codec, self.seed, self.rank = real, Path(root), codec, seed, rank
        self._sets: dict[int, tuple[str, SyntheticSet]] = {}
        self._generation: int | None = None

    def __len__(self) -> int:  # the sampler decides what is read; this is only what exists now
        return len(self.real)  # type: ignore[arg-type]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_sets"], state["_generation"] = {}, None  # opened again in each worker
        return state

    def __getitem__(self, key: Key) -> Any:
        generation, source, digest, row, weight = key
        if generation != self._generation:
            self._generation = generation
            self._reseed(generation)
        item = self.real[row] if source < 0 else self._set(source, digest)[row]
        return item if weight is None else Weighted(item, weight)

    def _reseed(self, generation: int) -> None:
        """In a worker: seed its generators from (seed, generation, rank, worker)."""
        worker = get_worker_info()
        if worker is None:  # loading in the main process: the loop seeds its generators
            return
        value = derive_seed(self.seed, "loader", generation, self.rank) + worker.id
        torch.manual_seed(value)
        random.seed(value)
        np.random.seed(value % 2**32)

    def _set(self, source: int, digest: str) -> SyntheticSet:
        cached = self._sets.get(source)
        if cached is not None and cached[0] == digest:
            return cached[1]
        store = SyntheticStore(self.root)
        record = store.records().get(source)
        if record is None or record.digest() != digest:
            raise RunDirectoryError(
                f"{store.manifest_path}: generation {source}'s record changed after the loop checked it;"
                " was the run directory changed during the fit?"
            )
        shards = [(shard.name, shard.rows) for shard in record.shards]
        opened = SyntheticSet(self.root / store.folder_name(source), shards, self.codec)
        self._sets[source] = (digest, opened)
        return opened


class KeyedSampler(DistributedSampler):  # type: ignore[type-arg]
    """This rank's share of the generation being served, as :data:`Key` s (a
    ``DistributedSampler``, so Lightning leaves it as it is)."""

    def __init__(self, num_replicas: int, rank: int) -> None:
        super().__init__(range(0), num_replicas=num_replicas, rank=rank, shuffle=False)  # type: ignore[arg-type]
        self._draw: GenerationDraw | None = None
        self._digests: dict[int, str] = {}

    def serve(self, draw: GenerationDraw, digests: Mapping[int, str]) -> None:
        """Serve ``draw`` from now on; ``digests``: the record digest of each synthetic generation."""
        self._draw, self._digests = draw, dict(digests)

    def __iter__(self) -> Iterator[Key]:  # type: ignore[override]
        draw = self._draw
        if draw is None:
            return
        dataset = draw.dataset
        mixed = isinstance(dataset, MixedDataset)
        for index in draw.sampler:
            source, row = dataset.locate(index) if mixed else (-1, index)  # type: ignore[attr-defined]
            weight = dataset.weight_of(source) if mixed else None  # type: ignore[attr-defined]
            yield draw.generation, source, self._digests.get(source, ""), row, weight

    def __len__(self) -> int:
        return 0 if self._draw is None else len(self._draw.sampler)


class PersistentLoader:
    """One loader for a whole fit, for a user loader with ``persistent_workers=True``."""

    def __init__(self, trainer: pl.Trainer, template: DataLoader[Any], real: RealData, root: Path, seed: int) -> None:
        self.sampler = KeyedSampler(trainer.world_size, trainer.global_rank)
        self.loader = GenerationLoader(
            ItemsByKey(real.dataset, root, real.codec, seed, trainer.global_rank),
            batch_size=template.batch_size or template.batch_sampler.batch_size,  # type: ignore[union-attr]
            sampler=self.sampler,
            collate_fn=WeightedCollate(template.collate_fn),  # items carry weights in weighted generations only
            num_workers=template.num_workers,
            pin_memory=template.pin_memory,
            drop_last=False,  # a generation's draw is whole batches already when the user drops the last
            timeout=template.timeout,
            worker_init_fn=template.worker_init_fn,
            multiprocessing_context=template.multiprocessing_context,
            generator=make_generator(seed, "loader", 0, trainer.global_rank),
            prefetch_factor=template.prefetch_factor,
            persistent_workers=True,
        )

    @staticmethod
    def wanted(template: DataLoader[Any]) -> bool:
        """Whether the user's loader keeps its workers (and has some)."""
        return template.num_workers > 0 and bool(template.persistent_workers)

    def serve(self, draw: GenerationDraw, digests: Mapping[int, str]) -> DataLoader[Any]:
        """The fit's loader, now serving ``draw``."""
        self.sampler.serve(draw, digests)
        return self.loader
