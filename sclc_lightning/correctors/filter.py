r"""The filter corrector: keep the best-scoring synthetic points, refill by resampling them."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sclc_lightning._callables import resolve_callable
from sclc_lightning._checks import plain_numbers
from sclc_lightning.correctors.base import Corrector, register_corrector
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.items.real import RealData

__all__ = ["FilterCorrector"]

ScoreFn = Callable[[Tensor, Any], Tensor]


@register_corrector("filter")
@plain_numbers
class FilterCorrector(Corrector):
    r"""Keep the :math:`\lceil m / (1+\gamma) \rceil` best points under ``score`` and refill.

    The kept points are those with the highest ``score(data, conditions)``; the batch is
    refilled to its size :math:`m = \lfloor \lambda n \rfloor` by drawing uniformly, with
    replacement, among the kept points (each copy keeps its conditions and other fields).
    :math:`\gamma = 0` keeps everything; :math:`\gamma = \infty` keeps only the best point.
    The refill repeats points, so it reports ``unique_fraction`` (distinct points over the batch);
    ``verify`` (:class:`~sclc_lightning.correctors.VerifierCorrector`) keeps only new samples
    instead, the loop drawing more.

    Args:
        score: ``f(data (m, ...), conditions) -> Tensor (m,)``, higher is better, or an import
            path ``"package.module:function"``.
        strength: :math:`\gamma`.
    """

    supports = frozenset({"continuous", "discrete", "conditional", "generated_fields"})
    deciding = ("score",)

    def __init__(self, score: ScoreFn | str, strength: float = 1.0) -> None:
        super().__init__(strength)
        resolved = resolve_callable(score, "score")
        if resolved is None:
            raise ValueError("`score` must be a callable or an import path, got None.")
        self.score = resolved

    def check_on_real(self, batch: SyntheticBatch) -> str:
        self._scores(batch)
        return ""

    def _scores(self, batch: SyntheticBatch) -> Tensor:
        num = len(batch)
        raw = torch.as_tensor(self.score(batch.data, batch.conditions))
        if raw.shape not in ((num,), (num, 1)):  # an (m/2, 2) matrix also holds m values: refused
            raise ValueError(
                f"`score` must return one value per point, shape ({num},) or ({num}, 1), got {tuple(raw.shape)}."
            )
        scores = raw.detach().cpu().flatten()
        if scores.is_floating_point() and not bool(torch.isfinite(scores).all()):
            raise ValueError(f"`score` gave {int((~torch.isfinite(scores)).sum())} non-finite values of {num}.")
        return scores

    def num_kept(self, num: int) -> int:
        """How many of ``num`` points survive the filter."""
        if num == 0:
            return 0
        if math.isinf(self.strength):
            return 1
        return max(1, math.ceil(num / (1.0 + self.strength) - 1e-9))

    def correct(
        self, batch: SyntheticBatch, *, generation: int, generator: torch.Generator, reference: RealData
    ) -> SyntheticBatch:
        num = len(batch)
        if num == 0:
            return batch
        scores = self._scores(batch)
        kept = torch.sort(torch.argsort(scores, descending=True, stable=True)[: self.num_kept(num)]).values
        refill = kept[torch.randint(kept.numel(), (num - kept.numel(),), generator=generator)]
        self.report(unique_fraction=kept.numel() / num)
        return batch.select(torch.cat([kept, refill]))
