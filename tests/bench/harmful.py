"""Correctors of the bench's tests, given to the loop by import path (``tests.bench.harmful:Shift``)."""

from __future__ import annotations

import math

from sclc_lightning.correctors import Corrector


class Shift(Corrector):
    """Moves every synthetic point by ``offset`` along every axis: a deliberately harmful corrector
    (the fit's mean drifts away from the data's by ``offset`` per generation)."""

    def __init__(self, offset: float = 0.3, strength: float = math.inf) -> None:
        super().__init__(strength)
        self.offset = float(offset)

    def settings(self) -> dict[str, float]:
        return {"offset": self.offset}

    def correct(self, batch, *, generation, generator, reference):  # type: ignore[no-untyped-def]
        return batch.data + self.offset


class NotACorrector:
    """A class that is not a Corrector."""
