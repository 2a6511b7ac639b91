"""The training loader of one generation: the planned mixed set, the fixed budget drawn from it,
and everything else (batch size, collate function, workers) from the user's own loader."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from sclc_lightning.data.budget import TrainingBudget, budget_order, make_generator, resolve_budget
from sclc_lightning.data.mixing import GenerationSampler, MixedDataset
from sclc_lightning.data.policies import GenerationPlan
from sclc_lightning.data.real import RealData

__all__ = ["GenerationDraw", "GenerationLoader", "draw_generation", "make_loader"]


@dataclass(frozen=True)
class GenerationDraw:
    """One generation's training set and this rank's part of the budget drawn from it.

    Attributes:
        generation: the generation that trains on it.
        dataset: the mixed set (the real dataset itself when the plan is all real).
        num_real: real items in it; the rest are synthetic.
        budget: the budget, rounded to whole batches on every rank.
        sampler: this rank's share of the global draw.
    """

    generation: int
    dataset: Dataset[Any]
    num_real: int
    budget: TrainingBudget
    sampler: GenerationSampler

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
) -> GenerationDraw:
    """Build the mixed set of ``plan`` and draw ``requested`` samples from it (``None``: one
    pass), split over the ranks; ``warn``: say when the budget is not whole batches, once per
    (requested, trained) pair in ``warned`` (the fit's record, so that 100 generations with the
    same budget say it once); ``skip_batches``: batches of each rank's share already trained (a
    generation continued from a checkpoint saved in its middle)."""
    dataset: Dataset[Any]
    if plan.is_all_real:
        dataset = real.dataset  # real data only: serve it without the mixing indirection
    else:
        dataset = MixedDataset(real.dataset, plan, synthetic)
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
    if requested is None:
        order = torch.randperm(size, generator=generator)[: budget.per_rank * trainer.world_size]
    else:
        order = budget_order(size, budget.total, generator)
    sampler = GenerationSampler(order, trainer.world_size, trainer.global_rank, skip=skip_batches * batch_size)
    return GenerationDraw(plan.generation, dataset, plan.num_real(len(real)), budget, sampler)


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
        collate_fn=template.collate_fn,
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
