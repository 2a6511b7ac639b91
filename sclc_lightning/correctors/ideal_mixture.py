r"""The ideal-mixture corrector: :math:`\pi_\gamma` realised exactly at the distribution level.

Replacing each synthetic point by a fresh real point with probability
:math:`\gamma / (1 + \gamma)` turns samples of :math:`p_\theta` into samples of
:math:`(p_\theta + \gamma\, p_{data}) / (1 + \gamma)` (Gillman et al. 2024, §4).
"""

from __future__ import annotations

import torch

from sclc_lightning._checks import plain_numbers
from sclc_lightning.correctors.base import Corrector, register_corrector
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.items.real import RealData

__all__ = ["IdealMixtureCorrector"]


@register_corrector("ideal_mixture")
@plain_numbers
class IdealMixtureCorrector(Corrector):
    r"""Replace each synthetic point by a fresh real item with probability :math:`\gamma/(1+\gamma)`.

    A replaced point becomes that real item whole (data, conditions and other fields, those
    generated with the data included). Works on any data: it moves nothing, it swaps items.
    """

    supports = frozenset({"continuous", "discrete", "conditional", "generated_fields"})
    deciding = ()
    pointwise = True

    def correct(
        self, batch: SyntheticBatch, *, generation: int, generator: torch.Generator, reference: RealData
    ) -> SyntheticBatch:
        num = len(batch)
        replace = torch.rand(num, generator=generator, dtype=torch.float64) < self.blend
        fresh = reference.sample(num, generator)
        data = torch.where(replace.view(-1, *([1] * (batch.data.dim() - 1))), fresh.data, batch.data)
        source = torch.where(replace, fresh.source_index, batch.source_index)
        conditions = batch.conditions
        if isinstance(conditions, torch.Tensor):
            mask = replace.view(-1, *([1] * (conditions.dim() - 1)))
            conditions = torch.where(mask, fresh.conditions, conditions)
        elif conditions is not None:
            conditions = [f if r else c for r, f, c in zip(replace.tolist(), fresh.conditions, conditions)]
        fields = None
        if batch.fields is not None:
            fields = {}
            for key, values in batch.fields.items():
                mask = replace.view(-1, *([1] * (values.dim() - 1)))
                fields[key] = torch.where(mask, fresh.fields[key], values)  # type: ignore[index]
        return SyntheticBatch(data, source, conditions, fields)
