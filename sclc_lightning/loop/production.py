r"""Producing one generation's synthetic data: sample on every rank, gather on global rank zero,
correct (in rounds for a selecting corrector), complete and store; or, with several ranks and a
point-by-point corrector (or none), every rank corrects and writes its own share; or reuse what
is on disk when a resumed run made it from the same model state with the same settings."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info

from sclc_lightning.correctors.base import Corrector
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.items.contract import ItemContractError, derive_fields
from sclc_lightning.items.real import RealData
from sclc_lightning.loop.config import LoopConfig
from sclc_lightning.loop.correction import Correction, Rounds, describe_corrector
from sclc_lightning.loop.exchange import Exchange
from sclc_lightning.loop.sampling import SyntheticDataError, agree, sample_share
from sclc_lightning.loop.shares import OwnShares, writes_own_shares
from sclc_lightning.sampler import BoundSampler
from sclc_lightning.store.manifest import RunDirectoryError
from sclc_lightning.store.synthetic import StoredGeneration, SyntheticStore

__all__ = ["Produced", "SyntheticProducer", "describe_corrector"]


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
        self.correction = Correction(corrector, real, config.run_seed)
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

        Sample on every rank, gather on global rank zero (:mod:`~sclc_lightning.loop.exchange`),
        correct (:mod:`~sclc_lightning.loop.correction`), in rounds until the corrector has kept
        ``total`` points; then complete and store them. With several ranks and no corrector or
        one that works point by point, every rank corrects and writes its own share instead, and
        global rank zero commits the generation (:mod:`~sclc_lightning.loop.shares`).

        Raises:
            RunDirectoryError: ``must_reuse`` (the generation continues from a checkpoint saved
                in its middle) and the data it trained on is not on disk.
        """
        reused = self._reused(records, generation, step, must_reuse)
        if reused is not None:
            return reused
        if writes_own_shares(self.corrector, trainer.world_size, total):
            self._own_shares(trainer, pl_module, generation, total, step, check)
        else:
            self._gathered(trainer, pl_module, generation, total, step, check)
        records = self.store.records()
        self._announced_reuse = generation  # made by this fit: finding it again is no news
        made = records[generation]
        return Produced(records, True, made.seconds_sampling, made.seconds_correcting, made.statistics or {})

    def _gathered(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        generation: int,
        total: int,
        step: int,
        check: Callable[[], None] | None,
    ) -> None:
        """Sample on every rank, correct and write on global rank zero (in rounds for a selecting corrector)."""
        rounds = self.correction.rounds(total, self.config.max_oversampling)
        sampling_s = self._draw(trainer, pl_module, generation, rounds, check)
        rank_zero_info(
            f"SelfConsumingLoop: sampled {rounds.drawn} points for generation {generation} in {sampling_s:.1f} s."
        )
        error: BaseException | None = None
        if trainer.is_global_zero:
            try:
                self._write(generation, rounds, step, sampling_s)
            except Exception as err:  # reported to every rank below
                error = err
        agree(trainer, error)

    def _own_shares(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        generation: int,
        total: int,
        step: int,
        check: Callable[[], None] | None,
    ) -> None:
        """Every rank samples, corrects and writes its own share; global rank zero commits
        (:mod:`~sclc_lightning.loop.shares`)."""
        started = time.perf_counter()
        local, error = self._sample(trainer, pl_module, generation, total, 0, check)
        agree(trainer, error)
        sampling_s = time.perf_counter() - started
        rank_zero_info(f"SelfConsumingLoop: sampled {total} points for generation {generation} in {sampling_s:.1f} s.")
        shares = OwnShares(self.correction, self.store, self.real, self.config.shard_rows, self.complete)
        assert local is not None
        shares.run(trainer, local, generation, total, step=step, settings=self.fingerprint, sampling_s=sampling_s)

    def _reused(
        self, records: dict[int, StoredGeneration], generation: int, step: int, must_reuse: bool
    ) -> Produced | None:
        """The generation on disk, if it was made from the model state of ``step`` with these settings."""
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
        return None

    def _draw(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        generation: int,
        rounds: Rounds,
        check: Callable[[], None] | None,
    ) -> float:
        """Draw and correct round after round until ``rounds`` has every point; the seconds sampling."""
        exchange = Exchange(self.store.root, self.real)
        ask, part, seconds = rounds.first(), 0, 0.0
        show_progress = trainer.progress_bar_callback is not None
        while True:
            started = time.perf_counter()
            local, error = self._sample(trainer, pl_module, generation, ask, part, check)
            batch = exchange.gather(trainer, local, generation, part, error)
            seconds += time.perf_counter() - started
            if batch is not None:
                try:
                    rounds.take(batch, generation, part, show_progress)
                except Exception as err:  # reported to every rank below
                    error = err
            agree(trainer, error)
            needed = rounds.needed if trainer.world_size == 1 else trainer.strategy.broadcast(rounds.needed, src=0)
            rounds.record(ask, needed)
            if rounds.needed == 0:
                return seconds
            ask, part = rounds.next(generation), part + 1  # raises OversamplingError past the cap

    def _sample(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        generation: int,
        total: int,
        part: int,
        check: Callable[[], None] | None,
    ) -> tuple[SyntheticBatch | None, BaseException | None]:
        """This rank's share of a round of ``total`` points, or the error sampling it raised."""
        try:
            local = sample_share(
                trainer,
                pl_module,
                self.real,
                total=total,
                generation=generation,
                seed=self.config.run_seed,
                batch_size=self.config.sample_batch_size,
                sampler=self.sampler,
                check=check,
                part=part,
            )
        except Exception as err:  # reported to every rank by the exchange
            return None, err
        return local, None

    def _write(self, generation: int, rounds: Rounds, step: int, sampling_s: float) -> None:
        """Complete the kept points' fields and store them, with what the correction measured."""
        start = time.perf_counter()
        batch = self.complete(rounds.result(), f"generation {generation}")
        correcting_s = time.perf_counter() - start + rounds.seconds
        if self.corrector is not None:
            rank_zero_info(f"SelfConsumingLoop: corrected generation {generation} in {correcting_s:.1f} s.")
        statistics = rounds.statistics()
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
