"""Before generation 0: the checks that refuse what cannot work, and the dry run.

:func:`prepare` audits the real items against the item contract
(:func:`~sclc_lightning.items.contract.audit_real_fields`), asks the corrector whether it handles
them (:meth:`~sclc_lightning.correctors.Corrector.check_items`) and runs the dry run, all before
the run directory is written or anything trains.

The dry run is a tiny draw through everything a generation will do.

Every mistake that would otherwise surface after generation 0 has trained (minutes to days on a
real model) shows here, in a second: a sampler that returns the wrong shape, dtype or device, a
corrector that cannot handle the data or returns another dtype, a field that cannot be built, a
synthetic item that does not collate with real ones. On every rank the loop samples a few points
with a generator of its own, builds their items exactly as training will read them from disk,
and collates them with real items through the user's ``collate_fn``; global rank zero also runs
the corrector on its draw (every rank does, when each will correct its own share). The global
random generators and the module's train/eval mode are restored afterwards, so a run with the
dry run trains exactly as one without it.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader

from sclc_lightning.correctors.base import check_draws
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.items.contract import audit_indices, audit_real_fields
from sclc_lightning.items.real import RealData
from sclc_lightning.loop.correction import describe_corrector
from sclc_lightning.loop.production import SyntheticProducer
from sclc_lightning.loop.sampling import SyntheticDataError, agree, sample_share
from sclc_lightning.loop.shares import writes_own_shares
from sclc_lightning.loop.steps import check_planned_shares
from sclc_lightning.seeding import forked_rng, make_generator
from sclc_lightning.store.synthetic import build_items

__all__ = ["DryRunError", "dry_run", "item_difference", "prepare"]

#: Points each rank samples.
POINTS_PER_RANK = 2
#: Real items the corrector's scores, rewards and verifiers are tried on (spread over the data).
REAL_ITEMS_SCORED = 64


class DryRunError(SyntheticDataError):
    """A synthetic item built in the dry run does not fit the real ones; the message says what."""


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)} on {value.device}"
    return type(value).__name__


def item_difference(real_item: Any, synthetic_item: Any, real: RealData) -> str | None:
    """How a synthetic item differs from a real one in structure (a field's type, dtype, shape
    or device), or ``None``.

    Examples:
        >>> import torch
        >>> from sclc_lightning.items.codec import ItemCodec
        >>> real = RealData([(torch.zeros(2), 1)], ItemCodec.infer((torch.zeros(2), 1)))
        >>> synthetic = (torch.zeros(2, dtype=torch.int64), 1)
        >>> print(item_difference((torch.zeros(2), 1), synthetic, real))  # doctest: +NORMALIZE_WHITESPACE
        field 0 is a torch.int64 tensor of shape (2,) on cpu in a synthetic item, a torch.float32 tensor of
        shape (2,) on cpu in a real one
    """
    codec = real.codec
    for key in codec.keys:
        mine, theirs = codec.field(synthetic_item, key), codec.field(real_item, key)
        same = type(mine) is type(theirs)
        if same and isinstance(mine, Tensor):
            same = mine.dtype == theirs.dtype and mine.shape == theirs.shape and mine.device == theirs.device
        if not same:
            name = "the item" if key is None else f"field {key!r}"
            return f"{name} is {_describe(mine)} in a synthetic item, {_describe(theirs)} in a real one"
    return None


def _check_items(batch: SyntheticBatch, real: RealData, template: DataLoader[Any], where: str) -> None:
    """Build ``batch``'s items and collate them next to real ones with the user's collate_fn."""
    synthetic = build_items(batch, real)
    reals = real.items(batch.source_index.tolist())
    for mine, theirs in zip(synthetic, reals):
        difference = item_difference(theirs, mine, real)
        if difference is not None:
            raise DryRunError(f"{where}: {difference}.")
    collate = template.collate_fn
    if collate is None or not synthetic:
        return
    try:
        collate(reals + synthetic)
    except Exception as err:
        raise DryRunError(
            f"{where}: the loader's collate_fn cannot batch synthetic items with real ones: {type(err).__name__}: {err}"
        ) from err


#: The most synthetic points a generation may ask for: past it ⌊λn⌋ is a typo, not a plan.
MOST_SYNTHETIC = 10**12


def dry_run(
    trainer: pl.Trainer, pl_module: pl.LightningModule, producer: SyntheticProducer, template: DataLoader[Any]
) -> tuple[float, str]:
    """Sample, correct, build and collate a tiny draw before generation 0, and try the
    corrector's scores, rewards and verifiers on real items
    (:meth:`~sclc_lightning.correctors.Corrector.check_on_real`); the seconds it took and what
    the corrector reported.

    Raises:
        SyntheticDataError: on every rank, naming the rank and the step that failed: the
            sampler's output (shape, dtype, values), the corrector's, a field's construction,
            a synthetic item that differs from real ones or does not collate with them.
    """
    start = time.perf_counter()
    real, config = producer.real, producer.config
    world, rank = trainer.world_size, trainer.global_rank
    error: BaseException | None = None
    report = ""
    try:
        corrector = producer.corrector
        # a selecting corrector gets the candidates of one kept point on rank zero
        per_rank = POINTS_PER_RANK if corrector is None else max(POINTS_PER_RANK, check_draws(corrector, 1))
        with forked_rng(config.run_seed, 0, rank, pl_module.device, purpose="dry_run"):
            local = sample_share(
                trainer,
                pl_module,
                real,
                total=per_rank * world,
                generation=0,
                seed=config.run_seed,
                batch_size=config.sample_batch_size,
                sampler=producer.sampler,
                stream="dry_run",
            )
            where = f"Dry run before generation 0 (`dry_run=False` skips it), rank {rank}"
            _check_items(producer.complete(local, where), real, template, f"{where}, {producer.sampler.name}")
            report = _dry_correct(trainer, producer, local, template, where)
    except Exception as err:  # reported to every rank below
        error = err
    agree(trainer, error)
    return time.perf_counter() - start, report


def _dry_correct(
    trainer: pl.Trainer, producer: SyntheticProducer, local: SyntheticBatch, template: DataLoader[Any], where: str
) -> str:
    """The dry run's correction: on global rank zero (its scores tried on real items too), and on
    every rank when each corrects its own share (a node without the corrector's packages fails
    here, not at generation 1); what the corrector reported."""
    corrector, real = producer.corrector, producer.real
    own = writes_own_shares(corrector, trainer.world_size, POINTS_PER_RANK * trainer.world_size)
    if corrector is None or not (trainer.is_global_zero or own):
        return ""
    name = describe_corrector(corrector)
    report = ""
    if trainer.is_global_zero:
        count = min(len(real), REAL_ITEMS_SCORED)
        on_real = real.batch(torch.linspace(0, len(real) - 1, count).round().long().unique())
        try:
            report = corrector.check_on_real(on_real)
        except ValueError as err:
            raise DryRunError(f"{where}, corrector {name} on {len(on_real)} real items: {err}") from err
    generator = make_generator(producer.config.run_seed, "dry_run", 1)
    kept = 1 if producer.correction.selects else len(local)  # what it keeps of one point, or all
    corrected = producer.correction.apply(local, kept, 1, generator, f"{where}, corrector {name}")
    _check_items(producer.complete(corrected, where), real, template, f"{where}, corrector {name}")
    return report


def prepare(
    trainer: pl.Trainer, pl_module: pl.LightningModule, producer: SyntheticProducer, template: DataLoader[Any]
) -> None:
    """Refuse, before anything is written or trained, items the loop would build wrongly, a
    corrector that cannot handle them, and (unless ``dry_run=False``) anything the dry run finds.

    Raises:
        ItemContractError: from the audit of the real items.
        ValueError: the corrector does not handle these items, the model corrector this module, or
            the loop the shares a policy plans.
        SyntheticDataError: from the dry run.
    """
    real, config, sampler = producer.real, producer.config, producer.sampler
    if config.model_corrector is not None:
        config.model_corrector.check_module(pl_module)
    check_planned_shares(config, len(real))  # a policy's weights, for every generation, before any trains
    n = config.policy.n(len(real))
    count = config.num_synthetic(len(real) if n is None else n)
    if count > MOST_SYNTHETIC:
        raise ValueError(
            f"`synthetic_fraction` {config.synthetic_fraction:g} asks for {count:.3g} synthetic points per generation"
            f" (⌊λn⌋ with n = {len(real) if n is None else n}), more than {MOST_SYNTHETIC:.0e}: give a smaller λ."
        )
    if config.generations < 1 or count == 0:
        return  # no synthetic item is ever made
    items = real.items(audit_indices(len(real)))
    audit_real_fields(items, real.codec, config.fields, takes_conditions=sampler.takes_conditions, sampler=sampler.name)
    if producer.corrector is not None:
        producer.corrector.check_items(real)
    if not config.dry_run:
        return
    seconds, report = dry_run(trainer, pl_module, producer, template)
    rank_zero_info(
        f"SelfConsumingLoop: dry run passed in {seconds:.3f} s ({POINTS_PER_RANK} points per rank sampled,"
        f"{' corrected,' if producer.corrector is not None else ''} built and collated with real items"
        f"{'; ' + report if report else ''})."
    )
