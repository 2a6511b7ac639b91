"""Applying a weight-space corrector (:mod:`sclc_lightning.correctors.model`) at a generation's
end: draw its samples (the same on every rank), build their items as training would, let it
compute the new weights, and load them (rank zero's, on every rank).

It runs when the next generation's loader is made, before that generation samples, and only when
the generation starts afresh: a checkpoint saved at a generation's end holds the weights before
the correction, and a resumed run corrects them again, from the same samples, to the same
weights; a checkpoint saved within a generation already holds corrected (and further trained)
weights."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, default_collate

from sclc_lightning._trainer import eval_mode
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.loop.config import LoopConfig
from sclc_lightning.loop.production import SyntheticProducer
from sclc_lightning.loop.sampling import draw_templates, split_output
from sclc_lightning.seeding import forked_rng, make_generator
from sclc_lightning.store.synthetic import build_items

__all__ = ["correct_model"]


def _samples(
    trainer: pl.Trainer, pl_module: pl.LightningModule, producer: SyntheticProducer, count: int, generation: int
) -> SyntheticBatch:
    """``count`` samples of the model, drawn alike on every rank."""
    config, real, sampler = producer.config, producer.real, producer.sampler
    templates = draw_templates(len(real), count, make_generator(config.run_seed, "model_correct_templates", generation))
    generator = make_generator(config.run_seed, "model_correct", generation)
    if pl_module.device.type != "cpu":
        generator = torch.Generator(device=pl_module.device).manual_seed(int(generator.initial_seed()))
    where = f"generation {generation}, {sampler.name} (samples for the model corrector)"
    chunks = []
    with eval_mode(pl_module, trainer):
        for start in range(0, count, config.sample_batch_size):
            index = templates[start : start + config.sample_batch_size]
            conditions = real.conditions_of(index)
            moved = conditions.to(pl_module.device) if isinstance(conditions, torch.Tensor) else conditions
            out = sampler(len(index), generator=generator, conditions=moved)
            piece = split_output(out, real, len(index), where, upcast=str(trainer.precision).endswith("-mixed"))
            chunks.append(SyntheticBatch(piece.data.cpu(), index, conditions, piece.fields))
    return producer.complete(SyntheticBatch.concat(chunks), where)


def correct_model(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    config: LoopConfig,
    producer: SyntheticProducer,
    template: DataLoader[Any],
    generation: int,
) -> None:
    """Apply the loop's model corrector to ``pl_module`` at the end of ``generation``."""
    corrector = config.model_corrector
    if corrector is None:
        return
    start = time.perf_counter()
    with forked_rng(config.run_seed, generation, 0, pl_module.device, purpose="model_correct"):
        batch = _samples(trainer, pl_module, producer, corrector.num_samples, generation)
        items = build_items(batch, producer.real)
        reference = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        with torch.enable_grad():
            weights = corrector.correct_model(
                pl_module,
                items=items,
                collate=template.collate_fn or default_collate,
                reference=reference,
                generation=generation,
                generator=make_generator(config.run_seed, "model_correct", generation, 0, 1),
            )
    if trainer.world_size > 1:  # every rank computed the same; rank zero's is loaded everywhere
        weights = trainer.strategy.broadcast(weights, src=0)
    pl_module.load_state_dict(weights)
    name = corrector.describe()["name"]
    rank_zero_info(
        f"SelfConsumingLoop: {name} corrected the weights at the end of generation {generation} from"
        f" {len(items)} samples in {time.perf_counter() - start:.1f} s."
    )
