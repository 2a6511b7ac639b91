r"""Every rank corrects and writes its own share of a generation, and global rank zero commits it.

With a corrector that works point by point (:attr:`~sclc_lightning.correctors.Corrector.pointwise`)
or none, nothing needs the whole generation in one place. With several processes each rank
corrects the points it sampled (with its own generator), derives their fields and writes them
as shards into the generation's temporary folder, numbered after the shards of the ranks before
it; it leaves a note in the exchange folder: its shards' names, rows and digests, its items'
string fields, what the corrector reported. Once every rank has written (the ranks meet), global
rank zero checks the folder against the notes, renames it into place and appends the
generation's record last. A kill at any moment leaves either no record (the generation is made
again from the same model state with the same draws) or a complete one; what a killed write
left is removed at the next start, like any interrupted write's.

The stored items are the ones the gathering path (:mod:`~sclc_lightning.loop.exchange`) stores,
row for row: the same source items in the same order (rank order), and the same corrected data
for a corrector that draws nothing (a random one draws from its rank's generator). Only the
shard boundaries differ: each rank's share starts a new shard.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info

from sclc_lightning.correctors.base import Corrector
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.items.real import RealData
from sclc_lightning.loop.correction import Correction, average_reports
from sclc_lightning.loop.exchange import Exchange
from sclc_lightning.loop.sampling import SyntheticDataError, agree
from sclc_lightning.mixing.budget import rank_slice
from sclc_lightning.seeding import make_generator
from sclc_lightning.store.manifest import RunDirectoryError, Shard
from sclc_lightning.store.synthetic import SyntheticStore, encode_batch

__all__ = ["OwnShares", "writes_own_shares"]


def writes_own_shares(corrector: Corrector | None, world_size: int, total: int) -> bool:
    """Whether each of ``world_size`` ranks corrects and writes its own share of a generation of
    ``total`` points: several ranks, and no corrector or one that works point by point without
    selecting (a selecting corrector's rounds keep their counts on global rank zero).

    Examples:
        >>> writes_own_shares(None, 2, 10), writes_own_shares(None, 1, 10)
        (True, False)
    """
    if world_size < 2 or total < 1:
        return False
    return corrector is None or (corrector.pointwise is True and not corrector.selects)


def _first_shard(total: int, world_size: int, rank: int, shard_rows: int) -> int:
    """The number of rank ``rank``'s first shard: the shards of the ranks before it come first."""
    shares = (rank_slice(total, world_size, r) for r in range(rank))
    return sum(SyntheticStore.shard_count(s.stop - s.start, shard_rows) for s in shares)


class OwnShares:
    """One generation written by every rank.

    Args:
        correction: the fit's correction (a point-by-point corrector, or none).
        store: the run directory's store.
        real: the real data.
        shard_rows: the rows of a shard.
        complete: derives the generated points' fields (``(batch, where) -> batch``).
    """

    def __init__(
        self,
        correction: Correction,
        store: SyntheticStore,
        real: RealData,
        shard_rows: int,
        complete: Callable[[SyntheticBatch, str], SyntheticBatch],
    ) -> None:
        self.correction, self.store, self.real = correction, store, real
        self.shard_rows, self.complete = shard_rows, complete

    def run(
        self,
        trainer: pl.Trainer,
        local: SyntheticBatch,
        generation: int,
        total: int,
        *,
        step: int,
        settings: Mapping[str, Any],
        sampling_s: float,
    ) -> None:
        """Correct and write this rank's ``local`` points of ``generation``; on global rank zero,
        commit the generation once every rank has written.

        Raises:
            Exception: any rank's error, on every rank (:func:`~sclc_lightning.loop.sampling.agree`).
        """
        folder: Path | None = None
        error: BaseException | None = None
        if trainer.is_global_zero:
            try:
                folder = self.store.start_generation(generation)
            except Exception as err:  # reported to every rank below
                error = err
        agree(trainer, error)
        folder = Path(trainer.strategy.broadcast(str(folder), src=0))
        exchange = Exchange(self.store.root, self.real)
        try:
            note = self.write_share(trainer, local, folder, generation, total)
            exchange.write_note(generation, trainer.global_rank, note)
        except Exception as err:  # reported to every rank below
            error = err
        try:
            agree(trainer, error)
            if trainer.is_global_zero:
                try:
                    notes = exchange.read_notes(generation, trainer.world_size)
                    self.commit(generation, folder, notes, total, step=step, settings=settings, sampling_s=sampling_s)
                except Exception as err:  # reported to every rank below
                    error = err
            agree(trainer, error)
        except BaseException:
            if trainer.is_global_zero:
                shutil.rmtree(folder, ignore_errors=True)
            raise

    def correct_share(
        self, trainer: pl.Trainer, local: SyntheticBatch, generation: int
    ) -> tuple[SyntheticBatch, dict[str, float]]:
        """This rank's points corrected (with its own generator) and completed, and what the
        corrector reported."""
        correction = self.correction
        corrector = correction.corrector
        if not len(local):
            return local, {}
        if corrector is None:
            return self.complete(local, f"generation {generation}"), {}
        rank_zero_info(f"SelfConsumingLoop: correcting generation {generation} with {correction.name} on every rank.")
        corrector.show_progress = trainer.is_global_zero and trainer.progress_bar_callback is not None
        generator = make_generator(correction.seed, "correct", generation, trainer.global_rank, 0)
        where = f"generation {generation}, corrector {correction.name} (rank {trainer.global_rank})"
        corrected = correction.apply(local, len(local), generation, generator, where)
        return self.complete(corrected, f"generation {generation}"), corrector.take_report()

    def write_share(
        self, trainer: pl.Trainer, local: SyntheticBatch, folder: Path, generation: int, total: int
    ) -> dict[str, Any]:
        """Correct and write this rank's points into ``folder``; its note (rows, shards, string
        fields, report, seconds correcting)."""
        started = time.perf_counter()
        batch, report = self.correct_share(trainer, local, generation)
        seconds = time.perf_counter() - started
        if not len(batch):  # a rank whose share is empty (fewer points than ranks)
            return {"rows": 0, "shards": [], "strings": {}, "report": {}, "seconds": seconds}
        tensors, strings = encode_batch(batch, self.real)
        first = _first_shard(total, trainer.world_size, trainer.global_rank, self.shard_rows)
        shards = self.store.write_shards(folder, tensors, self.shard_rows, first=first)
        return {
            "rows": len(batch),
            "shards": [[shard.name, shard.rows, shard.sha256] for shard in shards],
            "strings": strings,
            "report": {key: value for key, value in report.items() if math.isfinite(value)},
            "seconds": seconds,
        }

    def commit(
        self,
        generation: int,
        folder: Path,
        notes: list[dict[str, Any]],
        total: int,
        *,
        step: int,
        settings: Mapping[str, Any],
        sampling_s: float,
    ) -> None:
        """On global rank zero: check ``folder`` against every rank's note, then commit it.

        Raises:
            SyntheticDataError: the ranks wrote another number of points than ``total``.
            RunDirectoryError: the folder's files are not the shards the notes name.
        """
        shards = [Shard(name, int(rows), digest) for note in notes for name, rows, digest in note["shards"]]
        rows = sum(int(note["rows"]) for note in notes)
        if rows != total or sum(shard.rows for shard in shards) != total:
            raise SyntheticDataError(f"generation {generation}: the ranks wrote {rows} points, {total} were asked for.")
        present, named = set(os.listdir(folder)), {shard.name for shard in shards}
        if present != named or len(named) != len(shards):
            raise RunDirectoryError(
                f"{folder}: the ranks' notes name the shards {sorted(named)}, the folder holds {sorted(present)}."
            )
        strings: dict[str, list[str]] = {}
        for note in notes:
            for key, values in note["strings"].items():
                strings.setdefault(key, []).extend(values)
        if any(len(values) != total for values in strings.values()):  # a rank left out a field
            raise SyntheticDataError(f"generation {generation}: string fields miss some of its {total} items.")
        reports = [(note["report"], int(note["rows"]), int(note["rows"])) for note in notes if note["rows"]]
        correcting_s = max(float(note["seconds"]) for note in notes)
        if self.correction.corrector is not None:
            rank_zero_info(f"SelfConsumingLoop: corrected generation {generation} in {correcting_s:.1f} s.")
        self.store.commit_generation(
            generation,
            folder,
            shards,
            strings,
            sampled_at_step=step,
            settings=settings,
            seconds_sampling=sampling_s,
            seconds_correcting=correcting_s,
            statistics=average_reports(reports),
        )
