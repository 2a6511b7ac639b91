"""The sampling rounds of a selecting corrector: draw, let it keep what it accepts, draw again
for the rest, never past ``max_oversampling`` points drawn per point kept.

Every rank knows how many points each round draws (the count is decided from what global rank
zero broadcasts), so every rank raises the same :class:`OversamplingError` at the same round.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sclc_lightning.correctors.base import Corrector
from sclc_lightning.correctors.selection import OversamplingError, SelectingCorrector
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.loop.sampling import SyntheticDataError

__all__ = ["SelectionRounds", "check_rows"]

#: A later round draws this much more than the acceptance seen so far predicts.
MARGIN = 1.1
#: After ``NOTHING_KEPT_BOUND * max_oversampling`` draws with none kept, the acceptance is below
#: ``1 / max_oversampling`` with 95 % confidence (the rule of three): the rounds stop at once.
NOTHING_KEPT_BOUND = 3.0


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


class SelectionRounds:
    """The rounds of one generation.

    Args:
        total: the points the generation keeps (:math:`\\lfloor \\lambda n \\rfloor`).
        cap: ``max_oversampling``.
        corrector: the selecting corrector.
    """

    def __init__(self, total: int, cap: float, corrector: Corrector | None) -> None:
        assert isinstance(corrector, SelectingCorrector)
        self.total, self.cap, self.corrector = total, cap, corrector
        self.drawn, self.needed = 0, total
        self._kept: list[SyntheticBatch] = []
        self._sums: dict[str, float] = {}
        self._weights: dict[str, float] = {}
        self._seconds = 0.0

    @property
    def limit(self) -> int:
        """The most points the generation may draw."""
        return math.floor(self.cap * self.total + 1e-9)

    def first(self) -> int:
        """The points the first round draws.

        Raises:
            OversamplingError: the corrector asks for more than the cap at once.
        """
        ask = self.corrector.draws(self.total)
        if ask > self.limit:
            raise OversamplingError(
                f"Corrector {self._name()} draws {ask} points to keep {self.total} ({ask / self.total:g} per point"
                f" kept), more than the loop's `max_oversampling` ({self.cap:g}); raise `max_oversampling` or ask"
                " for fewer candidates."
            )
        return ask

    def add(self, selected: tuple[SyntheticBatch, dict[str, float], float], drawn: int) -> None:
        """On global rank zero: what one round of ``drawn`` points kept, its report and time."""
        batch, report, seconds = selected
        self._kept.append(batch)
        self.needed -= len(batch)
        self._seconds += seconds
        for key, value in report.items():
            weight = float(len(batch) if key.endswith("_kept") else drawn)
            if math.isfinite(value) and weight > 0:
                self._sums[key] = self._sums.get(key, 0.0) + weight * value
                self._weights[key] = self._weights.get(key, 0.0) + weight

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
            # keeping `total` points would take more than `max_oversampling` draws per point
            raise OversamplingError(
                f"Generation {generation}: corrector {self._name()} kept none of the first {self.drawn} points drawn:"
                f" its acceptance is below {NOTHING_KEPT_BOUND / self.drawn:.2%} (95 % bound), so {self.total} points"
                f" would take more than the loop's `max_oversampling` ({self.cap:g}) draws per point kept. Loosen"
                " the corrector (its threshold, fraction or verifier) or check the model's samples."
            )
        if kept == 0:
            ask = 2 * self.drawn
        else:
            ask = math.ceil(MARGIN * self.corrector.draws(self.needed) * self.drawn / kept)
        return max(1, min(ask, room))

    def result(self) -> SyntheticBatch:
        """The kept points of every round, in order: exactly ``total``."""
        batch = SyntheticBatch.concat(self._kept)
        assert len(batch) == self.total, (len(batch), self.total)
        return batch

    def statistics(self) -> dict[str, float]:
        """``oversampling`` (drawn per kept), ``acceptance_rate`` (kept over drawn, unless the
        corrector reports its own) and the corrector's reports averaged over the rounds;
        ``seconds_choosing`` for the record."""
        kept = self.total - self.needed
        averaged = {key: self._sums[key] / self._weights[key] for key in self._sums}
        return {
            "oversampling": self.drawn / self.total if self.total else 1.0,
            "acceptance_rate": kept / self.drawn if self.drawn else 1.0,
            **averaged,  # a corrector's own acceptance rate (its rule's, before the loop keeps enough) wins
            "seconds_choosing": self._seconds,
        }

    def _name(self) -> str:
        described = self.corrector.describe()
        return repr(described["name"])
