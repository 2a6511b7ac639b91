"""One fit of the loop: what it found when fitting started, and the loader of each generation.

A :class:`FitSession` exists from ``on_fit_start`` to the end of the fit; every field is known
when it is made. Before that (``trainer.estimated_stepping_batches`` in ``configure_optimizers``
asks for a loader early) :func:`preview_loader` answers, with the fit's planned steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from sclc_lightning._trainer import notify_generation_end
from sclc_lightning.correctors.base import Corrector
from sclc_lightning.loop.config import LoopConfig
from sclc_lightning.loop.interruption import (
    GenerationPosition,
    StopRequests,
    checkpoint_path,
    gather_rng,
    restore_rng,
)
from sclc_lightning.loop.loader import GenerationDraw, PersistentLoader, draw_generation, make_loader
from sclc_lightning.loop.model_correction import correct_model
from sclc_lightning.loop.preflight import prepare
from sclc_lightning.loop.production import SyntheticProducer, describe_corrector
from sclc_lightning.loop.real_source import RealSource
from sclc_lightning.loop.records import GenerationProgress, HistoryFile, log_settings
from sclc_lightning.loop.restart import InitialState
from sclc_lightning.loop.run import LoopState, check_resume, describe_run, open_run, run_root
from sclc_lightning.loop.sampling import agree
from sclc_lightning.loop.steps import planned_batches, planned_steps
from sclc_lightning.mixing.policies import GenerationPlan
from sclc_lightning.mixing.weighting import describe_shares, reads_item_weights
from sclc_lightning.sampler import BoundSampler
from sclc_lightning.seeding import forked_rng, reseed
from sclc_lightning.store.lock import RunLock
from sclc_lightning.store.manifest import StoredGeneration
from sclc_lightning.store.synthetic import SyntheticSet, SyntheticStore

__all__ = ["FitSession", "preview_loader", "start_session"]


def preview_loader(trainer: pl.Trainer, config: LoopConfig, source: RealSource) -> tuple[DataLoader[Any], int]:
    """For questions asked before fitting starts (the fit asks again): a loader of real items as
    long as the fit's longest generation, and the fit's optimizer steps (:mod:`.steps`)."""
    template, real = source.template, source.real
    batch_size = template.batch_size or template.batch_sampler.batch_size  # type: ignore[union-attr]
    batches = planned_batches(config, len(real), batch_size, trainer.world_size, template.drop_last)
    plan = config.policy.plan(0, len(real), {}, config.run_seed)
    longest = max(batches.values()) * batch_size * trainer.world_size
    draw = draw_generation(trainer, template, real, plan, {}, requested=longest, seed=config.run_seed, warn=False)
    accumulate = trainer.accumulate_grad_batches
    return make_loader(trainer, template, draw, config.run_seed), planned_steps(batches, accumulate)


@dataclass
class FitSession:
    """The state of one fit.

    Attributes:
        config: the loop's settings.
        source: the real data and the user's loader.
        store: the run's synthetic store.
        run_id: the run's id.
        producer: makes each generation's synthetic data.
        records: the generations on disk.
        lock: the run directory's lock (held by global rank zero).
        generation: the generation being trained (its loader was made last).
        progress: counts and clocks of the generation being trained.
        checkpointed: whether the manifest says a checkpoint was saved.
        stops: the fit's signal handlers (sampling stops early on a request).
        resume: where the checkpoint being resumed was saved, when in the middle of a
            generation; used by that generation's loader, then cleared.
        start_step: the global step at which the generation being trained started.
        history: the run's ``history.jsonl``, one record per generation trained.
        initial: with ``start_from="initial"``, the state every generation after the first
            starts from.
        saving: where in its generation the fit is, while an interrupted fit saves its
            checkpoint (:meth:`safe_point`), else ``None``.
    """

    config: LoopConfig
    source: RealSource
    store: SyntheticStore
    run_id: str
    producer: SyntheticProducer
    records: dict[int, StoredGeneration]
    lock: RunLock
    generation: int = 0
    progress: GenerationProgress = field(default_factory=GenerationProgress)
    checkpointed: bool = False
    stops: StopRequests = field(default_factory=StopRequests)
    resume: GenerationPosition | None = None
    start_step: int = 0
    initial: InitialState | None = None
    saving: GenerationPosition | None = None
    history: HistoryFile = field(init=False)
    _sets: dict[int, SyntheticSet] = field(default_factory=dict)
    _persistent: PersistentLoader | None = None
    _warned: set[tuple[int | None, int]] = field(default_factory=set)
    _said_weighing: bool = False
    _closed: bool = False
    _counts: dict[int, int] = field(default_factory=dict)  # the size of each synthetic set on disk
    _corrected: int | None = None  # the generation whose end the model corrector has corrected

    def __post_init__(self) -> None:
        self.history = HistoryFile(self.store.root)
        self._counts = {g: r.count for g, r in self.records.items()}

    @property
    def n(self) -> int:
        """``n`` of ``⌊λn⌋``."""
        n = self.config.policy.n(len(self.source.real))
        return len(self.source.real) if n is None else n

    @property
    def num_synthetic(self) -> int:
        """Points sampled for the generation being trained."""
        return self.config.num_synthetic(self.n, max(self.generation, 1))

    def restore(self, trainer: pl.Trainer, pl_module: pl.LightningModule, restored: LoopState | None) -> None:
        """From the checkpoint's loop state (``None``: a new run): where in a generation the fit
        resumes, and (``start_from="initial"``) the state generations start from."""
        if restored is not None and restored.position is not None:
            self.resume = GenerationPosition.from_dict(restored.position)
        if self.config.start_from == "initial":
            saved = None if restored is None else restored.initial
            self.initial = InitialState.open(trainer, pl_module, self.store.root, saved)

    def train_loader(self, trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> DataLoader[Any]:
        """The loader of ``generation``: its synthetic data made (or found on disk), the mixed set
        planned, the budget drawn, and the global generators reseeded for its training."""
        if generation > self.config.generations:
            return DataLoader([], batch_size=1)  # type: ignore[arg-type]
        if generation > self.config.first_generation:
            notify_generation_end(trainer, pl_module, generation - 1)  # e.g. its metrics row, before sampling
        position = self._resume_position(trainer, generation)
        self.generation = generation
        self.start_step = trainer.global_step if position is None else position.start_step
        self.progress = GenerationProgress()
        if position is None and generation >= 1 and self._corrected != generation - 1:
            # once per generation: a resumed fit asks for the same loader twice
            correct_model(trainer, pl_module, self.config, self.producer, self.source.template, generation - 1)
            self._corrected = generation - 1
        self._produce(trainer, pl_module, generation, position)
        if self.initial is not None and generation >= 1 and position is None:
            self.initial.apply(trainer, pl_module)  # after sampling from the previous generation's model
        plan, draw = self._draw(trainer, generation, position)
        self._count(trainer, draw, position)
        if position is None:
            reseed(self.config.run_seed, generation, trainer.global_rank)
        else:  # the generators as they were after the last batch trained
            restore_rng(position.rng[trainer.global_rank])
        return self._loader(trainer, plan, draw)

    def _resume_position(self, trainer: pl.Trainer, generation: int) -> GenerationPosition | None:
        """Where in ``generation`` the checkpoint being resumed was saved (once; ``None`` when
        it was saved at a generation's end or in another generation)."""
        position, self.resume = self.resume, None
        if position is None or position.generation != generation:
            return None
        if position.world_size != trainer.world_size:
            raise ValueError(
                f"The checkpoint was saved in the middle of generation {generation} by {position.world_size}"
                f" rank(s); resume it with {position.world_size} (now {trainer.world_size}), or from a"
                " checkpoint saved at a generation's end."
            )
        return position

    def _produce(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        generation: int,
        position: GenerationPosition | None,
    ) -> None:
        """Sample and correct ``generation``'s synthetic data, or find it on disk."""
        total = self.config.num_synthetic(self.n, generation)
        if generation < 1 or total == 0:
            return
        check = self.stops.check_while_sampling(trainer, generation)
        with forked_rng(self.config.run_seed, generation, trainer.global_rank, pl_module.device):
            produced = self.producer.ensure(
                trainer,
                pl_module,
                generation,
                self.records,
                total,
                step=self.start_step,
                check=check,
                must_reuse=position is not None,
            )
        self.records = produced.records
        if self._counts and max(self._counts) >= generation:  # a history being redone (rare)
            self._counts = {g: c for g, c in self._counts.items() if g < generation}
        self._counts[generation] = produced.records[generation].count  # kept, not rebuilt: no scan
        if produced.written:
            self._sets = {g: s for g, s in self._sets.items() if g < generation}
        self.progress.time_sampling_s = produced.seconds_sampling
        self.progress.time_correcting_s = produced.seconds_correcting
        self.progress.statistics = dict(produced.statistics)

    def _draw(
        self, trainer: pl.Trainer, generation: int, position: GenerationPosition | None
    ) -> tuple[GenerationPlan, GenerationDraw]:
        """The policy's plan of ``generation``'s mixed set and the budget's draw from it; every
        synthetic set read back is checked against its record, on every rank."""
        counts: Mapping[int, int] = MappingProxyType(self._counts)  # read-only, up to `generation`
        if self._counts and max(self._counts) > generation:
            counts = {g: c for g, c in self._counts.items() if g <= generation}
        plan = self.config.policy.plan(generation, len(self.source.real), counts, self.config.run_seed)
        error: BaseException | None = None
        sets: dict[int, Dataset[Any]] = {}
        try:
            sets = self._synthetic_sets(plan)
        except Exception as err:
            error = err
        agree(trainer, error)
        draw = draw_generation(
            trainer,
            self.source.template,
            self.source.real,
            plan,
            sets,
            requested=self.config.budget(generation, plan.num_real(len(self.source.real)) + plan.num_synthetic(counts)),
            seed=self.config.run_seed,
            warn=position is None,
            warned=self._warned,
            skip_batches=0 if position is None else position.batches,
            reads_weights=reads_item_weights(trainer.lightning_module),
            policy=self.config.policy,
        )
        if draw.shares is not None and not self._said_weighing:
            self._said_weighing = True
            rank_zero_info(
                f"SelfConsumingLoop: generation {generation} is weighted by source ({describe_shares(draw.shares)});"
                + (
                    " the items carry their weights (the module reads them)."
                    if draw.weighted_items
                    else f" {type(trainer.lightning_module).__name__} does not read item weights"
                    " (reads_item_weights), so the weights are sampling probabilities: each source gets its"
                    " share of the draw."
                )
            )
        return plan, draw

    def _count(self, trainer: pl.Trainer, draw: GenerationDraw, position: GenerationPosition | None) -> None:
        """What the generation will train on, for its record and the progress bar."""
        progress, template = self.progress, self.source.template
        progress.num_real, progress.num_synthetic = draw.num_real, draw.num_synthetic
        progress.num_trained, progress.planned_batches = draw.budget.total, draw.budget.batches_per_rank
        progress.batch_size = template.batch_size or template.batch_sampler.batch_size  # type: ignore[union-attr]
        progress.world_size, progress.batches = trainer.world_size, 0 if position is None else position.batches

    def _loader(self, trainer: pl.Trainer, plan: GenerationPlan, draw: GenerationDraw) -> DataLoader[Any]:
        """A loader over the draw; the user's persistent workers serve every generation."""
        if not PersistentLoader.wanted(self.source.template):
            return make_loader(trainer, self.source.template, draw, self.config.run_seed)
        if self._persistent is None:
            real, seed = self.source.real, self.config.run_seed
            self._persistent = PersistentLoader(trainer, self.source.template, real, self.store.root, seed)
        return self._persistent.serve(draw, {g: self.records[g].digest() for g, _ in plan.synthetic})

    def safe_point(self, trainer: pl.Trainer, batch_idx: int) -> None:
        """After a batch: on a stop request, save a checkpoint to continue from the next batch,
        requeue the job if the cluster asked, and end the fit."""
        self.progress.batches += 1
        if not self.stops.due(trainer, batch_idx):
            return
        position = GenerationPosition(
            self.generation, batch_idx + 1, self.start_step, trainer.world_size, gather_rng(trainer)
        )
        path, self.saving = checkpoint_path(trainer), position
        try:
            trainer.save_checkpoint(path)
        finally:
            self.saving = None
        self.stops.stop(trainer, path, f"generation {self.generation}, after batch {batch_idx + 1}")

    def close(self, trainer: pl.Trainer, finished: bool) -> None:
        """End the fit: signal handlers back, the folder marked finished (when the fit trained its
        last generation) and unlocked; once (later calls do nothing)."""
        if self._closed:
            return
        self._closed = True
        self.stops.uninstall()
        if finished and trainer.is_global_zero:
            self.store.mark(finished=True)
        self.lock.release()

    def expected_records(self) -> list[list[Any]]:
        """``[generation, count, digest]`` of the records up to the generation being trained:
        what a checkpoint saved now relies on."""
        return [[g, r.count, r.digest()] for g, r in sorted(self.records.items()) if g <= self.generation]

    def _synthetic_sets(self, plan: GenerationPlan) -> dict[int, Dataset[Any]]:
        opened: dict[int, SyntheticSet] = {}
        for g, _ in plan.synthetic:
            if g not in self._sets:
                real = self.source.real
                self._sets[g] = self.store.open_generation(self.records[g], real.codec, len(real))
            opened[g] = self._sets[g]
        self._sets = opened  # the sets of this plan only: those of older plans are let go
        return dict(opened)


def _per_generation(config: LoopConfig, n: int) -> str:
    """The synthetic points per generation, for the log: a count, or a schedule's range."""
    if config.schedule is None:
        return str(config.num_synthetic(n))
    counts = [config.num_synthetic(n, g) for g in range(1, config.generations + 1)]
    return f"{counts[0]}..{counts[-1]} (a schedule)" if counts else "0"


def start_session(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    config: LoopConfig,
    source: RealSource,
    corrector: Corrector | None,
    sampler: BoundSampler,
    fingerprint: dict[str, Any],
    restored: LoopState | None,
) -> FitSession:
    """Start a fit (``on_fit_start``): refuse what cannot work before anything is written
    (:func:`~sclc_lightning.loop.preflight.prepare`), then open the run directory, restore the
    checkpoint's state and install the signal handlers."""
    if restored is not None:
        # first: it explains later refusals
        check_resume(restored, fingerprint, config.accept_other_real_data, config.accept_edited_code)
    # records keep the settings that made them, without the real data's digest (checked above)
    made_with = {k: v for k, v in fingerprint.items() if k != "real_data"}
    producer = SyntheticProducer(config, source.real, None, corrector, made_with, sampler)
    prepare(trainer, pl_module, producer, source.template)
    n = config.policy.n(len(source.real))
    n = len(source.real) if n is None else n
    described = describe_run(config, fingerprint, n)
    log_settings(trainer, {**described, "start_from": config.start_from})
    root = run_root(trainer, config.output_dir, restored)
    run = open_run(trainer, root, source.real, described, restored)
    producer.store = run.store
    session = FitSession(config, source, run.store, run.run_id, producer, run.records, run.lock)
    session.restore(trainer, pl_module, restored)
    session.stops.install(trainer)
    mode = config.policy.describe()["name"]
    rank_zero_info(
        f"SelfConsumingLoop: n={n} real items, {_per_generation(config, n)} synthetic per generation,"
        f" generations {config.first_generation}..{config.generations} (one epoch each), mode"
        f" {mode!r}, corrector {describe_corrector(corrector)}, data in {run.store.root}."
    )
    return session
