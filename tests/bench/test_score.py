"""The bench's score and intervals (sclc_lightning.bench.score): exact at the references, right
sign for a harmful method, no score where nothing collapses, and intervals that cover what they
claim, measured by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from sclc_lightning.bench.score import mean_interval, score_task

REAL = [0.11, 0.18, 0.15, 0.2, 0.12]
UNCORRECTED = [1.02, 1.2, 1.11, 1.25, 1.08]


def test_the_uncorrected_arm_scores_exactly_0_and_real_data_only_exactly_1() -> None:
    zero = score_task(UNCORRECTED, REAL, UNCORRECTED, "lower")
    one = score_task(REAL, REAL, UNCORRECTED, "lower")
    assert zero.score == 0.0 and zero.interval is not None and zero.interval.to_list() == [0.0, 0.0]
    assert one.score == 1.0 and one.interval is not None and one.interval.to_list() == [1.0, 1.0]
    # a metric better high reads the same
    flipped = score_task([-x for x in REAL], [-x for x in REAL], [-x for x in UNCORRECTED], "higher")
    assert flipped.score == 1.0


def test_a_harmful_method_scores_below_0_with_its_interval() -> None:
    worse = [u + 0.5 + 0.01 * i for i, u in enumerate(UNCORRECTED)]
    result = score_task(worse, REAL, UNCORRECTED, "lower")
    assert result.score is not None and result.score < 0
    assert result.interval is not None and result.interval.high < 0


def test_no_score_where_the_references_do_not_differ_or_differ_the_wrong_way() -> None:
    same = score_task([1.0, 1.1, 0.9], [1.0, 1.2, 0.8], [1.05, 1.0, 0.95], "lower")
    assert same.score is None and same.interval is None and "within the spread of its seeds" in same.reason
    wrong = score_task(REAL, UNCORRECTED, REAL, "lower")  # "real only" worse than the uncorrected loop
    assert wrong.score is None and "the wrong way" in wrong.reason


def test_values_must_be_one_finite_value_per_seed_for_the_same_seeds() -> None:
    with pytest.raises(ValueError, match="one value per seed, the same seeds"):
        score_task([1.0, 2.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "lower")
    with pytest.raises(ValueError, match="`method` must be one finite value per seed"):
        score_task([1.0, float("nan")], [1.0, 2.0], [1.0, 2.0], "lower")
    assert mean_interval([2.0]) == (2.0, None)


def test_the_intervals_cover_what_they_claim_and_a_percentile_bootstrap_would_not() -> None:
    """5 seeds per arm, each seed's arms sharing its draw (paired), true score 0.6 and true mean of
    the method 1.4. Over 4,000 simulated benches the t interval of the mean and Fieller's interval
    of the score cover 95 % (standard error 0.0034: within 0.015 is over 4 standard errors); a
    percentile bootstrap over the same seeds covers about 84 % (standard error 0.008 over 2,000)."""
    rng = np.random.default_rng(20261205)
    trials, n = 4000, 5
    score_hits = mean_hits = bootstrap_hits = 0
    for trial in range(trials):
        u = rng.normal(2.0, 0.3, n)
        r = u - 1.0 + rng.normal(0.0, 0.25, n)
        m = u - 0.6 + rng.normal(0.0, 0.25, n)
        result = score_task(m, r, u, "lower")
        # the references differ by 4 standard errors: a score, inside its bounded interval
        assert result.score is not None and result.interval is not None
        assert result.interval.low <= result.score <= result.interval.high
        score_hits += result.interval.low <= 0.6 <= result.interval.high
        mean, interval = mean_interval(m)
        assert interval is not None and interval.low < mean < interval.high
        mean_hits += interval.low <= 1.4 <= interval.high
        if trial < 2000:
            rows = rng.integers(0, n, (1000, n))
            ratios = (m - u)[rows].mean(1) / (r - u)[rows].mean(1)
            low, high = np.quantile(ratios, [0.025, 0.975])
            bootstrap_hits += low <= 0.6 <= high
    assert abs(score_hits / trials - 0.95) < 0.015, score_hits / trials
    assert abs(mean_hits / trials - 0.95) < 0.015, mean_hits / trials
    assert bootstrap_hits / 2000 < 0.9, bootstrap_hits / 2000


def test_the_same_values_give_the_same_score_bit_for_bit() -> None:
    method = [0.5, 0.7, 0.6, 0.65, 0.55]
    first, second = (score_task(method, REAL, UNCORRECTED, "lower") for _ in range(2))
    assert first == second
