r"""Correctors that keep some of the model's samples and drop the rest: curation and verification.

A :class:`SelectingCorrector` asks the loop for more samples than it keeps
(:meth:`~SelectingCorrector.draws`: :math:`K m` for :math:`m` kept) and returns the rows it keeps,
each at most once: it never moves a point and never repeats one, so every kept point is a new
sample of the model. The loop draws them (a corrector cannot call the sampler), in rounds when
fewer are accepted than needed, and stops the run with :class:`OversamplingError` when it would
have to draw more than ``max_oversampling`` points per point kept. The budget stays exact: each
generation stores exactly :math:`\lfloor \lambda n \rfloor` points. The loop logs
``oversampling`` (points drawn per point kept) and ``acceptance_rate`` (kept over drawn) with
each generation, and what the corrector reports (``reward_mean``, ...).

- ``curate`` (:class:`CurationCorrector`): for each kept point, :math:`K` candidates and one chosen
  by Bradley–Terry sampling, :math:`P(x_k) \propto e^{\beta r(x_k)}`: people pick the one they prefer
  (Ferbach et al., NeurIPS 2024); iterated, :math:`p_{t+1} \propto p_t H_K`, tending to
  :math:`p_t e^{r}` as :math:`K` grows.
- ``verify`` (:class:`VerifierCorrector`): keep the points a verifier accepts (a threshold, the top
  fraction, or acceptance with the probability it gives): Feng et al. (2024); Yi et al. (2026);
  with ``verifier="model_log_prob"`` and the top fraction, the likelihood selection of Qiao et al.
  (2026).

The strength :math:`\gamma` keeps its meaning (how much of the correction is applied, none at 0, all
at :math:`\infty`): a point the rule would drop is kept anyway with probability
:math:`1/(1+\gamma)`; curation chooses by reward with probability :math:`\gamma/(1+\gamma)`, else
takes the first candidate. ``filter`` (:class:`~sclc_lightning.correctors.FilterCorrector`) stays
for the runs that use it: it refills the batch by repeating kept points (it reports
``unique_fraction``), where ``verify`` draws new ones.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import torch
from torch import Tensor

from sclc_lightning._checks import POSITIVE, Range, bounded, check_arguments, plain_numbers
from sclc_lightning.correctors.base import Corrector, register_corrector
from sclc_lightning.correctors.scores import Score, ScoreSpec
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.items.real import RealData

__all__ = ["CurationCorrector", "OversamplingError", "SelectingCorrector", "VerifierCorrector"]


class OversamplingError(RuntimeError):
    """A selecting corrector accepts so few samples that the loop would have to draw more than
    ``max_oversampling`` points per point kept; the message gives the counts and the fixes.

    Examples:
        >>> issubclass(OversamplingError, RuntimeError)
        True
    """


class SelectingCorrector(Corrector):
    """Base class of correctors that keep some of the points the loop draws for them.

    Override :meth:`choose` (and :meth:`draws` when one kept point needs more than one draw).
    :meth:`correct` serves a direct call outside the loop: it keeps what :meth:`choose` keeps of
    the given points, so it may return fewer. :meth:`choose` returns rows and must leave
    ``batch`` as it is (the kept rows are stored as drawn). What :meth:`~Corrector.report`
    records in each round is averaged over a generation's rounds, weighted by the points drawn
    (by the points kept for names ending in ``_kept``).
    """

    supports = frozenset({"continuous", "discrete", "conditional", "generated_fields"})
    selects = True

    def attach(self, module: Any) -> None:
        self._module = module

    def scores(self) -> list[Score]:
        """The rewards or verifiers it scores with (checked against the module at set-up)."""
        return []

    def check_items(self, reference: RealData) -> None:
        super().check_items(reference)
        if self.module is not None:
            for score in self.scores():
                score.check_module(self.module)

    def check_on_real(self, batch: SyntheticBatch) -> str:
        for score in self.scores():  # one finite value per point, or a ValueError naming it
            score(batch, 0, self.module)
        return ""

    @property
    def module(self) -> Any:
        """The LightningModule the loop attached (``None`` before)."""
        return self.__dict__.get("_module")

    @abc.abstractmethod
    def choose(
        self, batch: SyntheticBatch, *, keep: int, generation: int, generator: torch.Generator, reference: RealData
    ) -> Tensor:
        """The rows of ``batch`` to keep: a 1-D int64 tensor of distinct indices, at most ``keep``
        of them (fewer when too few are accepted: the loop draws again)."""

    def correct(
        self, batch: SyntheticBatch, *, generation: int, generator: torch.Generator, reference: RealData
    ) -> SyntheticBatch:
        keep = len(batch)
        while keep > 0 and self.draws(keep) > len(batch):
            keep -= 1
        rows = self.choose(batch, keep=keep, generation=generation, generator=generator, reference=reference)
        return batch.select(rows)

    def _forgive(self, accepted: Tensor, generator: torch.Generator) -> Tensor:
        """``accepted`` with each rejected point accepted anyway with probability 1/(1+γ)."""
        if math.isinf(self.strength):
            return accepted
        anyway = torch.rand(accepted.shape, generator=generator, dtype=torch.float64) < 1.0 / (1.0 + self.strength)
        return accepted | anyway


@register_corrector("curate")
@plain_numbers
class CurationCorrector(SelectingCorrector):
    r"""Best-of-:math:`K` curation under a Bradley–Terry model of a reward (Ferbach et al. 2024).

    For each kept point the loop draws :math:`K` candidates; one is chosen with probability
    :math:`e^{\beta r(x_k)} / \sum_j e^{\beta r(x_j)}` (sampled, not the argmax: a person choosing).
    Reports ``reward_mean`` (the mean reward of all candidates: the model's expected reward
    :math:`E_{p_t}[r]`) and ``reward_mean_kept`` (of the chosen points). Reported names ending in
    ``_kept`` are averaged over sampling rounds by the points kept, the others by the points drawn.

    Args:
        reward: the reward :math:`r` (:mod:`~sclc_lightning.correctors.scores`): a registered
            name, a callable ``f(data, conditions)``, an import path or ``{"command": ...}``.
        num_candidates: :math:`K \ge 2`.
        beta: the scale :math:`\beta > 0` of the rewards in the choice.
        strength: :math:`\gamma`; with probability :math:`1/(1+\gamma)` a kept point is the first
            candidate, uncurated (default ``inf``: always curated).

    Examples:
        >>> corrector = CurationCorrector(lambda data, conditions: data[:, 0], num_candidates=4)
        >>> corrector.draws(10)
        40
    """

    deciding = ("reward", "num_candidates", "beta")
    ranges = bounded(num_candidates=Range(above=1), beta=POSITIVE)

    def __init__(
        self, reward: ScoreSpec, num_candidates: int = 4, beta: float = 1.0, strength: float = math.inf
    ) -> None:
        super().__init__(strength)
        check_arguments(CurationCorrector, locals())
        self._reward = Score(reward, "reward")
        self.reward, self.num_candidates, self.beta = reward, int(num_candidates), float(beta)

    def settings(self) -> dict[str, Any]:
        return {"reward": self._reward.description, "num_candidates": self.num_candidates, "beta": self.beta}

    def scores(self) -> list[Score]:
        return [self._reward]

    def draws(self, keep: int) -> int:
        return self.num_candidates * keep

    def choose(
        self, batch: SyntheticBatch, *, keep: int, generation: int, generator: torch.Generator, reference: RealData
    ) -> Tensor:
        k = self.num_candidates
        if len(batch) < k * keep:
            raise ValueError(f"curate: {len(batch)} candidates cannot give {keep} points of {k} candidates each.")
        if keep == 0:
            return torch.empty(0, dtype=torch.int64)
        batch = batch.select(torch.arange(k * keep))
        rewards = self._reward(batch, generation, self.module).reshape(keep, k)
        logits = self.beta * rewards
        probabilities = torch.softmax(logits - logits.max(1, keepdim=True).values, dim=1)
        picked = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
        if not math.isinf(self.strength):
            curated = torch.rand(keep, generator=generator, dtype=torch.float64) < self.blend
            picked = torch.where(curated, picked, torch.zeros_like(picked))
        rows = torch.arange(keep) * k + picked
        self.report(reward_mean=float(rewards.mean()), reward_mean_kept=float(rewards.flatten()[rows].mean()))
        return rows


_RULES = ("threshold", "top_fraction", "probability")


@register_corrector("verify")
@plain_numbers
class VerifierCorrector(SelectingCorrector):
    r"""Keep the synthetic points a verifier accepts; the loop draws new ones for the rest.

    Rules, on the verifier's score :math:`s(x)`:

    - ``"threshold"``: accept :math:`s(x) \ge` ``threshold``;
    - ``"top_fraction"``: draw :math:`\lceil m / q \rceil` points and keep the best share ``fraction``
      :math:`q` (the loop keeps :math:`m` of them, in the order drawn);
    - ``"probability"``: accept with probability :math:`s(x) \in [0, 1]`.

    Reports ``acceptance_rate`` (the share of the points drawn that the rule accepts),
    ``score_mean`` (of every point drawn) and ``score_mean_kept``.

    Args:
        verifier: the score (:mod:`~sclc_lightning.correctors.scores`); ``"model_log_prob"`` is
            the likelihood under the model being trained (Qiao et al.'s selection).
        rule: ``"threshold"``, ``"top_fraction"`` or ``"probability"``.
        threshold: for ``"threshold"``.
        fraction: :math:`q \in (0, 1]`, for ``"top_fraction"``.
        oversample: points drawn per point needed in the first round of the ``"threshold"`` and
            ``"probability"`` rules (later rounds follow the acceptance seen).
        strength: :math:`\gamma`; a rejected point is kept anyway with probability
            :math:`1/(1+\gamma)` (default ``inf``: never).

    Examples:
        >>> corrector = VerifierCorrector(lambda data, conditions: -data[:, 0], rule="top_fraction", fraction=0.25)
        >>> corrector.draws(10)
        40
    """

    deciding = ("verifier", "rule", "threshold", "fraction", "oversample")
    ranges = bounded(fraction=Range(above=0, maximum=1), oversample=Range(minimum=1))

    def __init__(
        self,
        verifier: ScoreSpec,
        rule: str = "threshold",
        threshold: float | None = None,
        fraction: float | None = None,
        oversample: float = 1.0,
        strength: float = math.inf,
    ) -> None:
        super().__init__(strength)
        from sclc_lightning._checks import check_choice

        check_arguments(VerifierCorrector, locals())
        check_choice("rule", rule, _RULES)
        uses = {"threshold": "threshold", "top_fraction": "fraction"}.get(rule)
        given = [name for name, value in (("threshold", threshold), ("fraction", fraction)) if value is not None]
        unused = next((name for name in given if name != uses), None)
        if unused is not None:
            raise ValueError(f"`{unused}` is not used by rule {rule!r}: drop it, or choose the rule that uses it.")
        if rule == "threshold" and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
            raise ValueError(f"rule 'threshold' needs `threshold` (a number), got {threshold!r}.")
        if rule == "top_fraction" and (
            isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1
        ):
            raise ValueError(f"rule 'top_fraction' needs `fraction` in (0, 1], got {fraction!r}.")
        self._verifier = Score(verifier, "verifier")
        self.verifier, self.rule, self.threshold, self.fraction = verifier, rule, threshold, fraction
        self.oversample = float(oversample)

    def settings(self) -> dict[str, Any]:
        return {
            "verifier": self._verifier.description,
            "rule": self.rule,
            "threshold": self.threshold,
            "fraction": self.fraction,
            "oversample": self.oversample,
        }

    def scores(self) -> list[Score]:
        return [self._verifier]

    def check_on_real(self, batch: SyntheticBatch) -> str:
        """The verifier's acceptance of real items: a verifier that rejects all of them would
        reject the model's samples too, and the run would stop at generation 1 after drawing
        ``max_oversampling`` times the points; it is refused before generation 0 instead."""
        scores = self._verifier(batch, 0, self.module)
        if self.rule == "top_fraction":
            return f"verifier scores on {len(batch)} real items: {float(scores.min()):.4g} to {float(scores.max()):.4g}"
        if self.rule == "threshold":
            rate = float((scores >= float(self.threshold)).double().mean())  # type: ignore[arg-type]
        else:
            if bool((scores < 0).any() or (scores > 1).any()):
                raise ValueError(
                    f"verify: rule 'probability' needs verifier scores in [0, 1]; on {len(batch)} real items they run"
                    f" from {float(scores.min()):.4g} to {float(scores.max()):.4g}."
                )
            rate = float(scores.mean())
        if rate == 0:
            rule = f"threshold {self.threshold!r}" if self.rule == "threshold" else "probability"
            raise ValueError(
                f"verify: the verifier {self._verifier.description!r} accepts none of {len(batch)} real items (rule"
                f" {rule}; their scores run from {float(scores.min()):.4g} to {float(scores.max()):.4g}), so it would"
                " reject the model's samples too; fix the verifier or its threshold."
            )
        return f"verifier accepts {rate:.1%} of {len(batch)} real items"

    def draws(self, keep: int) -> int:
        if self.rule == "top_fraction":
            assert self.fraction is not None
            return math.ceil(keep / self.fraction - 1e-9)
        return math.ceil(keep * self.oversample - 1e-9)

    def choose(
        self, batch: SyntheticBatch, *, keep: int, generation: int, generator: torch.Generator, reference: RealData
    ) -> Tensor:
        if len(batch) == 0 or keep == 0:
            return torch.empty(0, dtype=torch.int64)
        scores = self._verifier(batch, generation, self.module)
        if self.rule == "threshold":
            accepted = scores >= float(self.threshold)  # type: ignore[arg-type]
        elif self.rule == "top_fraction":
            best = torch.argsort(scores, descending=True, stable=True)[: math.ceil(self.fraction * len(batch) - 1e-9)]  # type: ignore[operator]
            accepted = torch.zeros(len(batch), dtype=torch.bool)
            accepted[best] = True
        else:
            if bool((scores < 0).any() or (scores > 1).any()):
                raise ValueError("verify: rule 'probability' needs verifier scores in [0, 1].")
            accepted = torch.rand(len(batch), generator=generator, dtype=torch.float64) < scores
        accepted = self._forgive(accepted, generator)
        rows = torch.nonzero(accepted).flatten()[:keep]
        kept = float(scores[rows].mean()) if rows.numel() else math.nan
        self.report(
            acceptance_rate=float(accepted.double().mean()),
            score_mean=float(scores.mean()),
            **({"score_mean_kept": kept} if rows.numel() else {}),
        )
        return rows
