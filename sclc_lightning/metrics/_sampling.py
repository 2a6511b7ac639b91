"""Evaluation samples drawn across DDP ranks, batch by batch, with a progress bar."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from tqdm.auto import tqdm

from sclc_lightning.data.budget import derive_seed
from sclc_lightning.loop import eval_mode

__all__ = ["sample_across_ranks"]


def sample_across_ranks(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    num_samples: int,
    *,
    seed: int,
    stream: int,
    batch_size: int,
    conditions: Tensor | None = None,
    desc: str = "Evaluating",
) -> Tensor:
    """``num_samples`` samples of ``pl_module``, the same on every rank, on the CPU.

    Each of the ``world_size`` ranks draws ``ceil(num_samples / world_size)`` samples in batches
    of ``batch_size`` (rank ``r`` takes the conditions ``r * share ...``, wrapping around), the
    shares are gathered with the strategy's ``all_gather`` and cut to ``num_samples``. The draw
    of a rank is seeded by ``(seed, stream, rank)``, so for a fixed world size it is repeatable.
    """
    world, rank = trainer.world_size, trainer.global_rank
    share = math.ceil(num_samples / world)
    device = pl_module.device
    generator = torch.Generator(device=device).manual_seed(derive_seed(seed, "evaluate", stream, rank))
    sample = getattr(pl_module, "sample")  # noqa: B009 - LightningModule.__getattr__ is typed as Tensor | Module
    show = trainer.is_global_zero and trainer.progress_bar_callback is not None
    chunks: list[Tensor] = []
    with eval_mode(pl_module), tqdm(total=share, desc=desc, disable=not show, leave=False) as bar:
        for start in range(0, share, batch_size):
            count = min(batch_size, share - start)
            kwargs: dict[str, Any] = {"generator": generator}
            if conditions is not None:
                index = (torch.arange(count) + rank * share + start) % len(conditions)
                kwargs["conditions"] = conditions[index].to(device)
            chunks.append(sample(count, **kwargs).detach())
            bar.update(count)
    mine = torch.cat(chunks)
    if world > 1:
        mine = trainer.strategy.all_gather(mine).reshape(world * share, *mine.shape[1:])
    return mine[:num_samples].cpu()


def conditions_for(labels: Tensor, num_samples: int) -> Tensor:
    """The labels asked of an evaluation draw: the held-out labels repeated to ``num_samples``."""
    return labels[torch.arange(num_samples) % len(labels)]
