"""The optimizer steps a fit of the loop takes, known before it starts.

Lightning's ``trainer.estimated_stepping_batches`` multiplies the batches of the first epoch's
loader by the number of epochs. In the loop one epoch is one generation, and generations need
not have the same number of batches: generation 0 may have its own budget (``initial_images``),
and a one-pass generation (``images_per_generation=None``) grows with the mixed set
(``accumulate``). :func:`planned_batches` counts every generation's batches from the loop's own
plan, so that a schedule sized from the estimate (``OneCycleLR(total_steps=...)``) fits the run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info

from sclc_lightning import _lightning_compat as compat
from sclc_lightning.loop.config import LoopConfig
from sclc_lightning.mixing.budget import resolve_budget
from sclc_lightning.mixing.policies import GenerationPlan
from sclc_lightning.mixing.weighting import check_shares, shares_of

__all__ = ["check_planned_shares", "count_generation_step", "planned_batches", "planned_plans", "planned_steps"]


def planned_batches(
    config: LoopConfig, real_size: int, batch_size: int, world_size: int, drop_last: bool = False
) -> dict[int, int]:
    """Batches per rank of every generation the fit trains, by generation.

    Every synthetic set is assumed to hold ``⌊λ_t n⌋`` items, as the loop makes them.

    Examples:
        >>> from sclc_lightning import SelfConsumingLoop
        >>> loop = SelfConsumingLoop(0.5, generations=2, images_per_generation=None, mode="accumulate")
        >>> planned_batches(loop.config, real_size=100, batch_size=10, world_size=1)
        {0: 10, 1: 15, 2: 20}
    """
    batches: dict[int, int] = {}
    for plan, counts in planned_plans(config, real_size):
        size = plan.num_real(real_size) + plan.num_synthetic(counts)
        budget = resolve_budget(config.budget(plan.generation, size), size, batch_size, world_size, drop_last)
        batches[plan.generation] = budget.batches_per_rank
    return batches


def planned_plans(config: LoopConfig, real_size: int) -> Iterator[tuple[GenerationPlan, dict[int, int]]]:
    """The policy's plan of every generation the fit trains, with the synthetic counts it was
    planned with (``⌊λ_t n⌋`` per set, as the loop makes them)."""
    n = config.policy.n(real_size)
    n = real_size if n is None else n
    counts: dict[int, int] = {}
    for generation in range(config.first_generation, config.generations + 1):
        per_set = config.num_synthetic(n, generation) if generation >= 1 else 0
        if per_set > 0:
            counts[generation] = per_set
        # the counts do not depend on the seed (a pure planning call may come before a fit)
        yield config.policy.plan(generation, real_size, dict(counts), config.seed or 0), dict(counts)


def check_planned_shares(config: LoopConfig, real_size: int) -> None:
    """Refuse, before generation 0 trains, a plan whose shares the loop would refuse later.

    Raises:
        ValueError: naming the policy and the generation.
    """
    for plan, counts in planned_plans(config, real_size):
        if plan.shares is not None:
            with shares_of(config.policy, plan.generation):
                check_shares(plan.shares, plan.sources(), plan.sizes(real_size, counts))


def planned_steps(batches: dict[int, int], accumulate_grad_batches: int) -> int:
    """Optimizer steps of a fit whose generations have ``batches`` each: Lightning steps once per
    ``accumulate_grad_batches`` batches and once more at the end of an epoch with a remainder.

    Examples:
        >>> planned_steps({0: 17, 1: 8, 2: 8}, accumulate_grad_batches=2)
        17
    """
    return sum(math.ceil(count / accumulate_grad_batches) for count in batches.values())


def count_generation_step(trainer: pl.Trainer, pl_module: Any, generation: int, say: bool) -> None:
    """A generation that trained without one optimizer step (a model fitted in closed form
    that never steps): count one, as :class:`~sclc_lightning.models.ExactFitModule` does, so that
    ``ModelCheckpoint`` (which saves once per global step) writes each generation's checkpoint;
    ``say``: tell it (once per fit)."""
    compat.count_one_step(trainer)
    if say:
        rank_zero_info(
            f"SelfConsumingLoop: {type(pl_module).__name__} stepped no optimizer in generation {generation}, so"
            " the loop counts one step per such generation (trainer.global_step), and checkpoints are written"
            " for each; sclc_lightning.models.ExactFitModule does this itself."
        )
