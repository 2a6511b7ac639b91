r"""The score of a method on a task, and its interval over seeds.

Every task runs two reference arms with the same seeds as the methods: real data only (the best
the loop can do) and the uncorrected loop (the collapse). A method's score places its held-out
metric between them, from the means over seeds:

.. math::

    s = \frac{\bar m - \bar u}{\bar r - \bar u}

(:math:`\bar m, \bar r, \bar u` the means of the method, the real-only arm and the uncorrected
arm): 1 is as good as real data only, 0 as bad as the uncorrected loop, below 0 worse than doing
nothing. It reads the same whether the metric is better low or high.

The intervals are exact for normal per-seed values, and need no random draws (a rerun gives the
same card bit for bit):

- a mean's: Student's *t* over the seeds, :math:`\bar x \pm t_{0.975, n-1}\, s_x/\sqrt n`;
- a score's: Fieller's interval for a ratio of means, with the seeds paired (all arms of a seed
  together): the :math:`s` for which the per-seed differences :math:`(m_i - u_i) - s\,(r_i - u_i)`
  have a mean a *t* test does not reject. It is bounded exactly when the two references differ
  beyond their seeds' spread; otherwise the task shows no collapse at this size, and no score is
  given (dividing by noise would give any number). A percentile bootstrap over 3 to 5 seeds covers
  a ratio far less often than it claims; Fieller does not need many seeds to be right
  (``tests/bench/test_score.py`` measures both coverages).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

__all__ = ["Interval", "TaskScore", "mean_interval", "score_task"]

Direction = Literal["lower", "higher"]
#: The intervals' level.
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """``[low, high]``; equal ends when the seeds agree exactly."""

    low: float
    high: float

    def to_list(self) -> list[float]:
        return [self.low, self.high]


@dataclass(frozen=True)
class TaskScore:
    """A method's score on one task.

    Attributes:
        score: :math:`(\\bar m - \\bar u)/(\\bar r - \\bar u)`, or ``None`` where the task shows no
            collapse at this size (``reason`` says why).
        interval: its 95 % interval (Fieller's, seeds paired), ``None`` with the score.
        reason: why there is no score (empty when there is one).
    """

    score: float | None
    interval: Interval | None
    reason: str = ""


def _values(name: str, values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or not np.isfinite(array).all():
        raise ValueError(f"`{name}` must be one finite value per seed, got {values!r}.")
    return array


def mean_interval(values: Sequence[float]) -> tuple[float, Interval | None]:
    """The mean over seeds and its 95 % Student *t* interval (``None`` from one seed).

    Examples:
        >>> mean, interval = mean_interval([1.0, 2.0, 3.0])
        >>> mean, [round(x, 3) for x in interval.to_list()]
        (2.0, [-0.484, 4.484])
    """
    array = _values("values", values)
    if len(array) == 0:
        raise ValueError("`values` is empty: give one value per seed.")
    mean = float(array.mean())
    if len(array) < 2:
        return mean, None
    half = float(stats.t.ppf(0.5 + LEVEL / 2, len(array) - 1) * array.std(ddof=1) / math.sqrt(len(array)))
    return mean, Interval(mean - half, mean + half)


def score_task(
    method: Sequence[float], real: Sequence[float], uncorrected: Sequence[float], direction: Direction
) -> TaskScore:
    """The score of a method whose seeds gave ``method``, against the reference arms' values for
    the same seeds, in the same order; ``direction`` says whether the metric is better low or high.

    Raises:
        ValueError: the three do not have one finite value per seed each, for the same seeds.

    Examples:
        >>> result = score_task([0.5, 0.7, 0.6], real=[0.1, 0.2, 0.15], uncorrected=[1.1, 1.2, 1.15], direction="lower")
        >>> round(result.score, 3), [round(x, 3) for x in result.interval.to_list()]
        (0.55, [0.426, 0.674])
    """
    m, r, u = (_values(name, v) for name, v in (("method", method), ("real", real), ("uncorrected", uncorrected)))
    if not len(m) == len(r) == len(u) or len(m) < 2:
        raise ValueError(
            f"The method and both reference arms need one value per seed, the same seeds (at least 2); got"
            f" {len(m)}, {len(r)} and {len(u)} values."
        )
    gain, gap = m - u, r - u  # per seed, paired
    better = gap.mean() < 0 if direction == "lower" else gap.mean() > 0
    bounds = _fieller(gain, gap)
    if bounds is None or not better:
        spread = "within the spread of its seeds" if bounds is None else "the wrong way"
        return TaskScore(
            None,
            None,
            f"real data only and the uncorrected loop differ {spread} (mean {float(r.mean()):.4g} against"
            f" {float(u.mean()):.4g} over {len(m)} seeds): no collapse to correct at this size",
        )
    # + 0.0: a method equal to the uncorrected arm scores 0.0, not -0.0
    return TaskScore(float(gain.mean() / gap.mean()) + 0.0, Interval(bounds.low + 0.0, bounds.high + 0.0))


def _fieller(gain: np.ndarray, gap: np.ndarray) -> Interval | None:
    """Fieller's 95 % interval for ``mean(gain) / mean(gap)`` with paired samples; ``None`` when it
    is unbounded (``mean(gap)`` not distinguishable from 0)."""
    n = len(gain)
    t2 = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) ** 2
    a, b = float(gain.mean()), float(gap.mean())
    covariance = np.cov(np.stack([gain, gap]), ddof=1) / n  # of the two means
    v_aa, v_ab, v_bb = float(covariance[0, 0]), float(covariance[0, 1]), float(covariance[1, 1])
    quadratic = b * b - t2 * v_bb
    if quadratic <= 0:
        return None
    half = a * b - t2 * v_ab
    discriminant = max(half * half - quadratic * (a * a - t2 * v_aa), 0.0)
    root = math.sqrt(discriminant)
    return Interval((half - root) / quadratic, (half + root) / quadratic)
