r"""Correction, one path for every corrector: the loop draws in rounds, the corrector turns each
round's points into the ones kept, until the generation has its :math:`\lfloor \lambda n \rfloor`.

A corrector that transforms each point (``selects = False``: k-means, optimal transport, the
physics simulator, ...) keeps every point it is given, so a generation takes one round. A
selecting corrector (``selects = True``: curation, verification, filters) keeps some of the
points drawn for it; the loop draws again for the rest, in rounds, never past
``max_oversampling`` points drawn per point kept. :class:`Rounds` is the same for both; only
:meth:`Correction.apply`, one call of the corrector with its checks, differs by what it
returns (the points, or the rows kept).

Every rank knows how many points each round draws (the count is decided from what global rank
zero broadcasts), so every rank raises the same :class:`OversamplingError` at the same round.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from sclc_lightning.correctors.base import Corrector, check_draws
from sclc_lightning.correctors.selection import OversamplingError
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.items.real import RealData
from sclc_lightning.loop.sampling import SyntheticDataError, check_points
from sclc_lightning.seeding import make_generator

__all__ = ["Correction", "Rounds", "average_reports", "check_rows", "describe_corrector"]

#: A later round draws this much more than the acceptance seen so far predicts.
MARGIN = 1.1
#: After ``NOTHING_KEPT_BOUND * max_oversampling`` draws with none kept, the acceptance is below
#: ``1 / max_oversampling`` with 95 % confidence (the rule of three): the rounds stop at once.
NOTHING_KEPT_BOUND = 3.0


def describe_corrector(corrector: Corrector | None) -> str:
    """``"name (strength γ)"`` for messages, ``"none"`` without a corrector."""
    if corrector is None:
        return "none"
    described = corrector.describe()
    return f"{described['name']} (strength {described['strength']})"


def check_rows(rows: Any, size: int, needed: int, where: str) -> Tensor:
    """``rows`` if they are distinct row indices of a batch of ``size``, at most ``needed``.

    Raises:
        SyntheticDataError: naming ``where`` and what is wrong (a repeated row would count one
            sample twice).

    Examples:
        >>> check_rows(torch.tensor([2, 0]), 3, 2, "here").tolist()
        [2, 0]
    """
    if not isinstance(rows, Tensor) or rows.dim() != 1 or rows.dtype != torch.int64:
        shown = f"{rows.dtype} tensor of shape {tuple(rows.shape)}" if isinstance(rows, Tensor) else type(rows).__name__
        raise SyntheticDataError(f"{where}: `choose` must return a 1-D int64 tensor of row indices, got {shown}.")
    if rows.numel() > needed:
        raise SyntheticDataError(f"{where}: `choose` kept {rows.numel()} rows, at most {needed} were asked for.")
    if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= size):
        raise SyntheticDataError(f"{where}: `choose` returned rows outside [0, {size}).")
    if rows.unique().numel() != rows.numel():
        raise SyntheticDataError(
            f"{where}: `choose` returned a row twice; a kept point is a new sample, never a repeat."
        )
    return rows


def average_reports(reports: list[tuple[dict[str, float], int, int]]) -> dict[str, float]:
    """What a corrector reported over several calls ``(report, drawn, kept)``: each value
    averaged, weighted by the points drawn (by the points kept for ``*_kept`` values).

    Examples:
        >>> average_reports([({"moved": 1.0}, 3, 3), ({"moved": 0.0}, 1, 1)])
        {'moved': 0.75}
    """
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    for report, drawn, kept in reports:
        for key, value in report.items():
            weight = float(kept if key.endswith("_kept") else drawn)
            if math.isfinite(value) and weight > 0:
                sums[key] = sums.get(key, 0.0) + weight * value
                weights[key] = weights.get(key, 0.0) + weight
    return {key: sums[key] / weights[key] for key in sums}


class Correction:
    """The corrector of one fit (or none), as the loop applies it.

    Args:
        corrector: the corrector in use, or ``None`` (every point is kept as drawn).
        real: the real data (the correctors' reference).
        seed: the run's seed.
    """

    def __init__(self, corrector: Corrector | None, real: RealData, seed: int) -> None:
        self.corrector, self.real, self.seed = corrector, real, seed
        self._ready = False

    @property
    def name(self) -> str:
        return describe_corrector(self.corrector)

    @property
    def selects(self) -> bool:
        """Whether the corrector keeps some of the points drawn for it."""
        return self.corrector is not None and self.corrector.selects

    def prepare(self) -> None:
        """Set the corrector up once (fit its centres, ...), before its first correction."""
        if self.corrector is not None and not self._ready:
            self.corrector.setup(self.real, make_generator(self.seed, "corrector_setup", 0))
            self._ready = True

    def apply(self, batch: SyntheticBatch, keep: int, generation: int, generator: Any, where: str) -> SyntheticBatch:
        """What the corrector keeps of ``batch`` (at most ``keep`` points), checked like the
        model's samples: the data field's shape, dtype (never cast) and values, one source index
        per point, the generated fields kept; a selection's rows distinct and in range.

        Raises:
            SyntheticDataError: naming ``where`` and what is wrong.
        """
        corrector = self.corrector
        if corrector is None:
            return batch
        self.prepare()
        if corrector.selects:
            rows = corrector.choose(  # type: ignore[attr-defined]
                batch, keep=keep, generation=generation, generator=generator, reference=self.real
            )
            return batch.select(check_rows(rows, len(batch), keep, where))
        out = corrector.correct(batch, generation=generation, generator=generator, reference=self.real)
        return self._checked(batch, out, where)

    def _checked(self, batch: SyntheticBatch, out: Any, where: str) -> SyntheticBatch:
        codec = self.real.codec
        if not isinstance(out, SyntheticBatch):
            return batch.with_data(check_points(out, codec, len(batch), where))
        check_points(out.data, codec, len(batch), where)
        if tuple(out.source_index.shape) != (len(batch),):
            raise SyntheticDataError(f"{where} returned {tuple(out.source_index.shape)} source indices.")
        missing = [k for k in codec.generated_keys if out.fields is None or k not in out.fields]
        if missing:
            raise SyntheticDataError(
                f"{where} returned a batch without the generated fields {missing!r}; keep `batch.fields` (use"
                " `batch.select(...)` or `batch.with_data(...)`)."
            )
        return out

    def rounds(self, total: int, cap: float) -> Rounds:
        """The rounds of a generation that keeps ``total`` points, at most ``cap`` drawn per point kept."""
        return Rounds(self, total, cap)


class Rounds:
    """The rounds of one generation: how many points each draws, what each kept.

    Args:
        correction: the fit's correction.
        total: the points the generation keeps (:math:`\\lfloor \\lambda n \\rfloor`).
        cap: ``max_oversampling``.
    """

    def __init__(self, correction: Correction, total: int, cap: float) -> None:
        self.correction, self.total, self.cap = correction, total, cap
        self.drawn, self.needed = 0, total
        self.seconds = 0.0  # correcting, on global rank zero
        self._kept: list[SyntheticBatch] = []
        self._reports: list[tuple[dict[str, float], int, int]] = []  # (report, drawn, kept)

    @property
    def limit(self) -> int:
        """The most points the generation may draw."""
        return math.floor(self.cap * self.total + 1e-9)

    def _draws(self, keep: int) -> int:
        corrector = self.correction.corrector
        return keep if corrector is None else check_draws(corrector, keep)

    def first(self) -> int:
        """The points the first round draws.

        Raises:
            OversamplingError: the corrector asks for more than the cap at once.
        """
        ask = self._draws(self.total)
        if ask > self.limit:
            raise OversamplingError(
                f"Corrector {self._name()} draws {ask} points to keep {self.total} ({ask / self.total:g} per point"
                f" kept), more than the loop's `max_oversampling` ({self.cap:g}); raise `max_oversampling` or ask"
                " for fewer candidates."
            )
        return ask

    def take(self, batch: SyntheticBatch, generation: int, part: int, show_progress: bool) -> None:
        """On global rank zero: correct round ``part``'s ``batch`` (every rank's points, in rank
        order) and keep what the corrector keeps."""
        correction = self.correction
        started = time.perf_counter()
        if correction.corrector is not None and part == 0:
            rank_zero_info(f"SelfConsumingLoop: correcting generation {generation} with {correction.name}.")
        if correction.corrector is not None:
            correction.corrector.show_progress = show_progress
        generator = make_generator(correction.seed, "correct", generation, 0, part)
        where = f"generation {generation}, corrector {correction.name}"
        kept = correction.apply(batch, self.needed, generation, generator, where)
        report = correction.corrector.take_report() if correction.corrector is not None else {}
        self._kept.append(kept)
        self._reports.append((report, len(batch), len(kept)))
        self.needed -= len(kept)
        self.seconds += time.perf_counter() - started

    def record(self, drawn: int, needed: int) -> None:
        """On every rank: a round drew ``drawn`` and ``needed`` points are still missing."""
        self.drawn += drawn
        self.needed = needed

    def next(self, generation: int) -> int:
        """The points the next round draws: what the acceptance so far predicts, with a margin.

        Raises:
            OversamplingError: the cap is reached with points still missing.
        """
        kept = self.total - self.needed
        room = self.limit - self.drawn
        if room <= 0:
            rate = kept / self.drawn if self.drawn else 0.0
            raise OversamplingError(
                f"Generation {generation}: corrector {self._name()} kept {kept} of the {self.drawn} points drawn"
                f" ({rate:.2%}), {self.needed} short of {self.total}; drawing more would pass the loop's"
                f" `max_oversampling` ({self.cap:g} points per point kept). Loosen the corrector (its threshold,"
                " fraction or verifier) or raise `max_oversampling`."
            )
        if kept == 0 and self.drawn >= NOTHING_KEPT_BOUND * self.cap:
            # none of `drawn` kept: the acceptance is below 3/drawn (95 %, the rule of three), so
            # keeping `total` points would take more than `max_oversampling` draws per point kept
            raise OversamplingError(
                f"Generation {generation}: corrector {self._name()} kept none of the first {self.drawn} points drawn:"
                f" its acceptance is below {NOTHING_KEPT_BOUND / self.drawn:.2%} (95 % bound), so {self.total} points"
                f" would take more than the loop's `max_oversampling` ({self.cap:g}) draws per point kept. Loosen"
                " the corrector (its threshold, fraction or verifier) or check the model's samples."
            )
        ask = 2 * self.drawn if kept == 0 else math.ceil(MARGIN * self._draws(self.needed) * self.drawn / kept)
        return max(1, min(ask, room))

    def result(self) -> SyntheticBatch:
        """The kept points of every round, in order: exactly ``total``."""
        batch = self._kept[0] if len(self._kept) == 1 else SyntheticBatch.concat(self._kept)
        assert len(batch) == self.total, (len(batch), self.total)
        return batch

    def statistics(self) -> dict[str, float]:
        """What the corrector reported, averaged over the rounds (weighted by the points drawn,
        by the points kept for ``*_kept`` values); for a selecting corrector also
        ``oversampling`` (drawn per kept) and ``acceptance_rate`` (kept over drawn, unless the
        corrector reports its own)."""
        averaged = self._reports[0][0] if len(self._reports) == 1 else average_reports(self._reports)
        if not self.correction.selects:
            return dict(averaged)
        kept = self.total - self.needed
        return {
            "oversampling": self.drawn / self.total if self.total else 1.0,
            "acceptance_rate": kept / self.drawn if self.drawn else 1.0,
            **averaged,  # a corrector's own acceptance rate (its rule's, before the loop keeps enough) wins
        }

    def _name(self) -> str:
        corrector = self.correction.corrector
        return repr(None if corrector is None else corrector.describe()["name"])
