r"""Producing one generation's synthetic data: sample on every rank, gather, correct, check and
store on global rank zero, or reuse what is on disk when a resumed run made it from the same
model state with the same settings."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info

from sclc_lightning.correctors.base import Corrector
from sclc_lightning.correctors.selection import SelectingCorrector
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.items.contract import ItemContractError, derive_fields
from sclc_lightning.items.real import RealData
from sclc_lightning.loop.config import LoopConfig
from sclc_lightning.loop.sampling import SyntheticDataError, agree, check_points, sample_share
from sclc_lightning.loop.selection import SelectionRounds, check_rows
from sclc_lightning.sampler import BoundSampler
from sclc_lightning.seeding import make_generator
from sclc_lightning.store.manifest import RunDirectoryError
from sclc_lightning.store.synthetic import StoredGeneration, SyntheticStore

__all__ = ["Produced", "SyntheticProducer", "describe_corrector"]


def describe_corrector(corrector: Corrector | None) -> str:
    """``"name (strength γ)"`` for messages, ``"none"`` without a corrector."""
    if corrector is None:
        return "none"
    described = corrector.describe()
    return f"{described['name']} (strength {described['strength']})"


@dataclass(frozen=True)
class Produced:
    """The outcome of :meth:`SyntheticProducer.ensure`.

    Attributes:
        records: every generation on disk, after this one was made or found.
        written: whether the generation was written now (rather than reused).
        seconds_sampling: time spent sampling it (as recorded, when reused).
        seconds_correcting: time spent correcting it.
        statistics: what the corrector and the sampling rounds measured (as recorded, when reused).
    """

    records: dict[int, StoredGeneration]
    written: bool
    seconds_sampling: float
    seconds_correcting: float
    statistics: dict[str, float]


class SyntheticProducer:
    r"""Makes each generation's :math:`\lfloor \lambda n \rfloor` corrected synthetic points.

    Args:
        config: the loop's settings.
        real: the real data.
        store: where generations are written (``None`` until the run directory is open; only
            :meth:`ensure` needs it).
        corrector: the corrector in use, or ``None``.
        fingerprint: the fit's settings, recorded with each generation.
        sampler: the module's sampler.
    """

    def __init__(
        self,
        config: LoopConfig,
        real: RealData,
        store: SyntheticStore | None,
        corrector: Corrector | None,
        fingerprint: Mapping[str, Any],
        sampler: BoundSampler,
    ) -> None:
        self.config, self.real, self.corrector = config, real, corrector
        self._store = store
        self.fingerprint, self.sampler = dict(fingerprint), sampler
        self._corrector_ready = False
        self._announced_reuse: int | None = None

    @property
    def store(self) -> SyntheticStore:
        """The run directory's store."""
        if self._store is None:
            raise RuntimeError("The producer's store is attached once the run directory is open.")
        return self._store

    @store.setter
    def store(self, store: SyntheticStore) -> None:
        self._store = store

    def ensure(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        generation: int,
        records: dict[int, StoredGeneration],
        total: int,
        *,
        step: int,
        check: Callable[[], None] | None = None,
        must_reuse: bool = False,
    ) -> Produced:
        """Make generation ``generation``'s ``total`` points unless ``records`` shows them made
        from the model state of global step ``step`` with these settings; ``check`` is called
        between sampling batches (it raises to stop).

        Raises:
            RunDirectoryError: ``must_reuse`` (the generation continues from a checkpoint saved
                in its middle) and the data it trained on is not on disk.
        """
        record = records.get(generation)
        if record is not None and record.sampled_at_step == step and record.settings == self.fingerprint:
            if self._announced_reuse != generation:
                rank_zero_info(f"SelfConsumingLoop: generation {generation} reuses its synthetic data on disk.")
                self._announced_reuse = generation
            return Produced(records, False, record.seconds_sampling, record.seconds_correcting, record.statistics or {})
        if must_reuse:
            raise RunDirectoryError(
                f"{self.store.manifest_path} has no generation {generation} sampled at step {step}, but the"
                " checkpoint was saved while that generation trained on it; restore the folder or resume"
                " from a checkpoint saved at a generation's end."
            )
        world, rank = trainer.world_size, trainer.global_rank
        selecting = isinstance(self.corrector, SelectingCorrector)
        rounds = SelectionRounds(total, self.config.max_oversampling, self.corrector) if selecting else None
        ask, part, sampling_s = rounds.first() if rounds else total, 0, 0.0
        while True:
            error: BaseException | None = None
            local: SyntheticBatch | None = None
            started = time.perf_counter()
            try:
                local = sample_share(
                    trainer,
                    pl_module,
                    self.real,
                    total=ask,
                    generation=generation,
                    seed=self.config.run_seed,
                    batch_size=self.config.sample_batch_size,
                    sampler=self.sampler,
                    check=check,
                    part=part,
                )
                if world > 1:
                    self.store.write_exchange(generation, rank, local)
            except Exception as err:  # reported to every rank below
                error = err
            agree(trainer, error)
            sampling_s += time.perf_counter() - started
            if rounds is None:
                break
            if trainer.is_global_zero and local is not None:
                try:
                    batch = self.store.gather_exchange(generation, world, self.real) if world > 1 else local
                    rounds.add(self._select(generation, part, batch, rounds.needed, trainer), ask)
                except Exception as err:
                    error = err
            agree(trainer, error)
            rounds.record(ask, rounds.needed if world == 1 else trainer.strategy.broadcast(rounds.needed, src=0))
            if rounds.needed == 0:
                break
            ask, part = rounds.next(generation), part + 1  # raises OversamplingError past the cap
        drawn = rounds.drawn if rounds else total
        rank_zero_info(f"SelfConsumingLoop: sampled {drawn} points for generation {generation} in {sampling_s:.1f} s.")
        if trainer.is_global_zero and (local is not None or rounds is not None):
            try:
                if rounds is not None:
                    batch, statistics = rounds.result(), rounds.statistics()
                else:
                    assert local is not None
                    batch = self.store.gather_exchange(generation, world, self.real) if world > 1 else local
                    statistics = {}
                self._correct_and_write(generation, batch, step, sampling_s, statistics, trainer, rounds is None)
            except Exception as err:
                error = err
        agree(trainer, error)
        records = self.store.records()
        self._announced_reuse = generation  # made by this fit: finding it again is no news
        made = records[generation]
        return Produced(records, True, sampling_s, made.seconds_correcting, made.statistics or {})

    def _select(
        self, generation: int, part: int, batch: SyntheticBatch, needed: int, trainer: pl.Trainer
    ) -> tuple[SyntheticBatch, dict[str, float], float]:
        """The rows a selecting corrector keeps of one round's ``batch`` (at most ``needed``), what
        it reported, and the seconds it took."""
        corrector = self.corrector
        assert isinstance(corrector, SelectingCorrector)
        started = time.perf_counter()
        self.prepare_corrector()
        corrector.show_progress = trainer.progress_bar_callback is not None
        generator = make_generator(self.config.run_seed, "correct", generation, 0, part)
        name = describe_corrector(corrector)
        rows = corrector.choose(batch, keep=needed, generation=generation, generator=generator, reference=self.real)
        check_rows(rows, len(batch), needed, f"generation {generation}, corrector {name}")
        return batch.select(rows), corrector.take_report(), time.perf_counter() - started

    def _correct_and_write(
        self,
        generation: int,
        batch: SyntheticBatch,
        step: int,
        sampling_s: float,
        statistics: dict[str, float],
        trainer: pl.Trainer,
        correct: bool,
    ) -> None:
        start = time.perf_counter()
        if self.corrector is not None and correct:
            batch = self._correct(generation, batch, trainer.progress_bar_callback is not None)
            statistics = {**statistics, **self.corrector.take_report()}
        batch = self.complete(batch, f"generation {generation}")
        correcting_s = time.perf_counter() - start + statistics.pop("seconds_choosing", 0.0)
        if self.corrector is not None:
            rank_zero_info(f"SelfConsumingLoop: corrected generation {generation} in {correcting_s:.1f} s.")
        self.store.write_generation(
            generation,
            batch,
            self.real,
            shard_rows=self.config.shard_rows,
            sampled_at_step=step,
            settings=self.fingerprint,
            seconds_sampling=sampling_s,
            seconds_correcting=correcting_s,
            statistics={k: v for k, v in statistics.items() if math.isfinite(v)},
        )

    def complete(self, batch: SyntheticBatch, where: str) -> SyntheticBatch:
        """``batch`` with the fields derived from its (corrected) data (the item contract).

        Raises:
            SyntheticDataError: a derivation returned the wrong shape or dtype, naming the field.
        """
        if not self.config.fields:
            return batch
        try:
            derived = derive_fields(self.config.fields, self.real.codec, batch.data, self.real.items([0])[0])
        except ItemContractError as err:
            raise SyntheticDataError(f"{where}: {err}") from None
        return batch.with_fields(derived) if derived else batch

    def prepare_corrector(self) -> None:
        """Set the corrector up once (fit its centres, ...), before its first correction."""
        if self.corrector is not None and not self._corrector_ready:
            self.corrector.setup(self.real, make_generator(self.config.run_seed, "corrector_setup", 0))
            self._corrector_ready = True

    def correct(self, batch: SyntheticBatch, generation: int, generator: Any, where: str) -> SyntheticBatch:
        """``batch`` corrected and checked like the model's samples: the data field's shape,
        dtype (never cast) and values, one source index per point, the generated fields kept."""
        corrector = self.corrector
        if corrector is None:
            return batch
        self.prepare_corrector()
        if isinstance(corrector, SelectingCorrector):  # (the dry run) what it keeps for one point
            rows = corrector.choose(batch, keep=1, generation=generation, generator=generator, reference=self.real)
            corrector.take_report()
            return batch.select(check_rows(rows, len(batch), 1, where))
        out = corrector.correct(batch, generation=generation, generator=generator, reference=self.real)
        if not isinstance(out, SyntheticBatch):
            return batch.with_data(check_points(out, self.real.codec, len(batch), where))
        check_points(out.data, self.real.codec, len(batch), where)
        if tuple(out.source_index.shape) != (len(batch),):
            raise SyntheticDataError(f"{where} returned {tuple(out.source_index.shape)} source indices.")
        missing = [k for k in self.real.codec.generated_keys if out.fields is None or k not in out.fields]
        if missing:
            raise SyntheticDataError(
                f"{where} returned a batch without the generated fields {missing!r}; keep `batch.fields` (use"
                " `batch.select(...)` or `batch.with_data(...)`)."
            )
        return out

    def _correct(self, generation: int, batch: SyntheticBatch, show_progress: bool) -> SyntheticBatch:
        """The corrected batch (global rank zero only)."""
        corrector = self.corrector
        if corrector is None:
            return batch
        name = describe_corrector(corrector)
        rank_zero_info(f"SelfConsumingLoop: correcting generation {generation} with {name}.")
        corrector.show_progress = show_progress
        generator = make_generator(self.config.run_seed, "correct", generation)
        return self.correct(batch, generation, generator, f"generation {generation}, corrector {name}")
