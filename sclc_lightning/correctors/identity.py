"""The identity corrector: no correction (:math:`\\gamma = 0` whatever ``strength`` says)."""

from __future__ import annotations

import torch

from sclc_lightning._checks import plain_numbers
from sclc_lightning.correctors.base import Corrector, register_corrector
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.items.real import RealData

__all__ = ["IdentityCorrector"]


@register_corrector("identity")
@plain_numbers
class IdentityCorrector(Corrector):
    """Returns the synthetic points unchanged: plain iterative retraining.

    Args:
        strength: ignored: the identity is γ = 0 whatever it is given (reports label it "γ=0").

    Examples:
        >>> IdentityCorrector().name
        'identity'
    """

    supports = frozenset({"continuous", "discrete", "conditional", "generated_fields"})
    deciding = ()
    pointwise = True
    #: γ is 0 whatever ``strength`` says: reports label the arm "γ=0".
    applies_strength = False

    def __init__(self, strength: float = 0.0) -> None:
        super().__init__(strength)

    def correct(
        self, batch: SyntheticBatch, *, generation: int, generator: torch.Generator, reference: RealData
    ) -> SyntheticBatch:
        return batch
