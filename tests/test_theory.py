import math

import pytest
import torch

from sclc_lightning.theory import (
    bound_probability,
    error_bound,
    gaussian_collapse_rate,
    is_stable,
    max_stable_fraction,
    rho,
)

C = {"alpha": 1.0, "epsilon": 0.1, "lipschitz": 1.0}  # alpha + eps L = 1.1


def test_rho_by_hand() -> None:
    assert math.isclose(rho(0.3, **C), 0.33 / 0.67)
    assert rho(0.0, **C) == 0.0
    assert rho(1 / 1.1, **C) == math.inf and rho(0.95, **C) == math.inf


def test_stability_and_largest_stable_fraction() -> None:
    assert math.isclose(max_stable_fraction(0.0, **C), 1 / 2.2)
    assert math.isclose(max_stable_fraction(1.0, **C), 2 / 3.3)
    assert math.isclose(max_stable_fraction(float("inf"), **C), 1 / 1.1)
    for gamma in (0.0, 1.0, 5.0):
        edge = max_stable_fraction(gamma, **C)
        assert is_stable(edge * 0.999, gamma, **C) and not is_stable(edge * 1.001, gamma, **C)
    # without model error, no correction admits lambda just below 1/2
    assert max_stable_fraction(0.0, alpha=2.0, epsilon=0.0, lipschitz=3.0) == 0.5
    assert is_stable(0.9, float("inf"), **C) and not is_stable(0.95, float("inf"), **C)


def test_error_bound_by_hand() -> None:
    # lambda such that rho = 1 and gamma = 1: contraction q = 1/2
    lam = 0.5 / 1.1
    assert math.isclose(rho(lam, **C), 1.0)
    assert math.isclose(error_bound(0, lam, 1.0, **C, tau=0.2, initial_error=3.0), 0.2 + 3.0)
    assert math.isclose(error_bound(2, lam, 1.0, **C, tau=0.2, initial_error=3.0), 0.2 * 1.75 + 0.25 * 3.0)
    assert math.isclose(error_bound(3, lam, 0.0, **C, tau=0.2, initial_error=3.0), 0.2 * 4 + 3.0)  # q = 1
    assert error_bound(5, 0.95, 1.0, **C, tau=0.2, initial_error=3.0) == math.inf
    assert math.isclose(bound_probability(3, 0.1), 0.729)


def test_gaussian_collapse_rate_by_hand() -> None:
    assert math.isclose(gaussian_collapse_rate(2), math.sqrt(2 / math.pi))
    assert math.isclose(gaussian_collapse_rate(3), math.sqrt(math.pi) / 2)  # Gamma(3/2) / Gamma(1)
    assert math.isclose(gaussian_collapse_rate(10), math.sqrt(2 / 9) * 24 / math.gamma(4.5))  # 0.97266
    rates = [gaussian_collapse_rate(n) for n in (2, 5, 10, 100, 1000)]
    assert rates == sorted(rates) and rates[-1] < 1.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: rho(-0.1, **C), "`synthetic_fraction` must be a number >= 0"),
        (lambda: rho(0.1, alpha=0.0, epsilon=0.1, lipschitz=1.0), "`alpha` must be > 0"),
        (lambda: gaussian_collapse_rate(1), "`n` must be an integer >= 2"),
        (lambda: error_bound(-1, 0.1, 0.0, **C, tau=0.1, initial_error=1.0), "`t` must be an integer >= 0"),
        (lambda: bound_probability(1, 1.5), r"`delta` must be in \[0, 1\]"),
    ],
)
def test_bad_inputs(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()


def test_every_theory_helper_is_on_the_theory_page() -> None:
    from pathlib import Path

    import sclc_lightning.theory as theory

    page = (Path(__file__).parents[1] / "docs" / "theory.md").read_text()
    missing = [name for name in theory.__all__ if f"`{name}(" not in page]
    assert missing == []


def test_the_mle_estimator_collapses_faster_by_the_ratio_of_the_divisors() -> None:
    import math

    from sclc_lightning.theory import expected_log_sigma_ratio, gaussian_collapse_rate

    n = 10
    assert gaussian_collapse_rate(n, "mle") == pytest.approx(gaussian_collapse_rate(n) * math.sqrt((n - 1) / n))
    gap = expected_log_sigma_ratio(7, n) - expected_log_sigma_ratio(7, n, estimator="mle")
    assert gap == pytest.approx(7 * 0.5 * math.log(n / (n - 1)))
    with pytest.raises(ValueError, match="`estimator` must be 'unbiased' or 'mle', got 'ml'"):
        gaussian_collapse_rate(n, "ml")


# -- weighted mixing of fresh real and synthetic data (He, Xu & Cheng 2025) -----------------------


@pytest.mark.parametrize("ratio", [0.5, 1.0, 2.0])
def test_the_golden_weight_minimises_the_stationary_error(ratio: float) -> None:
    from sclc_lightning.theory import golden_weight, weighted_mixing_variance

    best = golden_weight(ratio)
    assert ratio * best**2 + best - 1 == pytest.approx(0, abs=1e-12)
    grid = [i / 2000 for i in range(1, 2001)]
    found = min(grid, key=lambda w: weighted_mixing_variance(None, w, ratio, 50))
    assert abs(found - best) <= 1 / 2000
    at_best = weighted_mixing_variance(None, best, ratio, 50)
    assert at_best == pytest.approx(best / 50, rel=1e-12)  # w* sigma^2 / n, below sigma^2 / n
    assert weighted_mixing_variance(None, 1.0, ratio, 50) == pytest.approx(1 / 50)
    assert weighted_mixing_variance(None, 1 / (1 + ratio), ratio, 50) > at_best  # unweighted mixing
    assert weighted_mixing_variance(400, best, ratio, 50) == pytest.approx(at_best, rel=1e-9)  # the recursion's limit


def test_the_weighted_mixing_variance_matches_a_simulation() -> None:
    """20,000 independent chains of a Gaussian mean refitted on n = 20 fresh real points and k·n
    points sampled from the previous fit, weighted w : 1 - w, 40 generations. The sample variance
    of the fitted mean has a relative standard error of sqrt(2 / 19,999) = 1.0 %; 4 of them
    separate w* = 0.618 (theory 0.0309) from w = 0.5 and 0.75 (0.0333 each, 8 % higher)."""
    from sclc_lightning.theory import golden_weight, weighted_mixing_variance

    chains, n, ratio, generations = 20_000, 20, 1.0, 40
    generator = torch.Generator().manual_seed(0)
    measured = {}
    for weight in (0.5, golden_weight(ratio), 0.75):
        mean = torch.randn(chains, n, generator=generator, dtype=torch.float64).mean(1)  # generation 0: real only
        for _ in range(generations):
            real = torch.randn(chains, n, generator=generator, dtype=torch.float64).mean(1)
            drawn = torch.randn(chains, int(ratio * n), generator=generator, dtype=torch.float64)
            synthetic = (mean[:, None] + drawn).mean(1)
            mean = weight * real + (1 - weight) * synthetic
        measured[weight] = float(mean.var())
        theory = weighted_mixing_variance(generations, weight, ratio, n)
        assert abs(measured[weight] / theory - 1) < 4 * (2 / (chains - 1)) ** 0.5, (weight, measured[weight], theory)
    assert measured[golden_weight(ratio)] < min(measured[0.5], measured[0.75])


# -- curated retraining mixed with real data (Ferbach et al. 2024) ---------------------------------

TWO = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64)  # two equally likely points, e^r = 1 and 3


def test_curated_retraining_by_hand() -> None:
    """Two points with e^r = 1 and 3, half real data, one generation. Best of K = 2 (Bradley-Terry):
    H(a) = 2(1/2 * 1/2 + 1/2 * 1/4) = 0.75 and H(b) = 1.25, so p_1/p_data = 1/2 + H/2 = 0.875 and
    1.125. K -> infinity: H = e^r / E[e^r] = 0.5 and 1.5, ratios 0.75 and 1.25."""
    from sclc_lightning.theory import curated_retraining

    generator = torch.Generator().manual_seed(0)
    best_of_two = curated_retraining(TWO, 1, real_share=0.5, num_candidates=2, draws=40_000, generator=generator)
    # Monte Carlo over 40,000 draws: the standard error of each H is below 0.002
    assert best_of_two[1].tolist() == pytest.approx([0.875, 1.125], abs=0.01)
    assert best_of_two[0].tolist() == [1.0, 1.0]
    limit = curated_retraining(TWO, 1, real_share=0.5, num_candidates=None)
    assert limit[1].tolist() == pytest.approx([0.75, 1.25], abs=1e-12)
    alone = curated_retraining(TWO, 3, real_share=0.5, num_candidates=1, generator=generator)
    assert torch.allclose(
        alone, torch.ones(4, 2, dtype=torch.float64), rtol=0, atol=1e-12
    )  # one candidate: no choice, no change


def test_curated_retraining_with_a_steep_reward_or_a_negative_beta() -> None:
    """Rewards 0 and 1000 (beta times the spread far beyond exp's range): the better point always
    wins a pair it is in, so best of two gives H = 0.5 and 1.5 (ratios 0.75, 1.25 with half real
    data), the limit H = 0 and 2 (ratios 0.5, 1.5); a negative beta favours the other point; numpy
    scalars are numbers like any other."""
    import numpy as np

    from sclc_lightning.theory import curated_retraining, curation_kl_bound

    steep = torch.tensor([0.0, 1000.0], dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    pairs = curated_retraining(steep, 2, 0.5, num_candidates=2, draws=40_000, generator=generator)
    assert pairs[1].tolist() == pytest.approx([0.75, 1.25], abs=0.01) and bool(torch.isfinite(pairs).all())
    limit = curated_retraining(steep, 3, 0.5, num_candidates=None)
    assert limit[1].tolist() == pytest.approx([0.5, 1.5], abs=1e-12)
    flipped = curated_retraining(steep, 3, 0.5, num_candidates=None, beta=-1.0)
    assert torch.equal(flipped, limit.flip(1))
    same = curated_retraining(steep, np.int64(3), np.float32(0.5), num_candidates=np.int64(2), beta=np.float32(1.0))
    assert same.shape == (4, 2) and bool(torch.isfinite(same).all())
    assert math.copysign(1.0, curation_kl_bound(1.0)) == 1.0  # 0.0, not -0.0


def test_curated_retraining_stays_within_the_bound_and_collapses_without_real_data() -> None:
    from sclc_lightning.theory import curated_retraining, curation_kl_bound

    reward = torch.linspace(-2.0, 2.0, 401)
    for share in (0.2, 0.5, 0.8):
        kl = -curated_retraining(reward, 40, share, num_candidates=None, beta=3.0).log().mean(1)
        assert kl[0] == 0 and bool((kl[1:] > 0).all())
        assert float(kl.max()) <= curation_kl_bound(share) and float(kl[-1]) > 0.5 * float(kl[20])
    real = curated_retraining(reward, 40, 1.0, num_candidates=None, beta=3.0)
    assert torch.equal(real, torch.ones(41, 401, dtype=torch.float64))
    alone = -curated_retraining(reward, 40, 0.0, num_candidates=None, beta=3.0).log().mean(1)
    assert float(alone[-1]) > 10 * curation_kl_bound(0.2)  # replace: the divergence grows without bound
    assert curation_kl_bound(0.5) == pytest.approx(math.log(2))
    assert curation_kl_bound(1.0) == 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda t: t.curation_kl_bound(0.0), r"`real_share` must be in \(0, 1\]"),
        (lambda t: t.curation_kl_bound(float("nan")), "`real_share` must be a number"),
        (lambda t: t.curated_retraining(TWO, 1, 1.5), r"`real_share` must be in \[0, 1\]"),
        (lambda t: t.curated_retraining(TWO, -1, 0.5), "`generations` must be an integer >= 0"),
        (lambda t: t.curated_retraining(TWO, 1, 0.5, num_candidates=0), "`num_candidates` must be an integer"),
        (lambda t: t.curated_retraining(TWO, 1, 0.5, beta=float("inf")), "`beta` must be a finite number"),
        (lambda t: t.curated_retraining(TWO, 1, 0.5, draws=0), "`draws` must be an integer >= 1"),
        (lambda t: t.curated_retraining(TWO * 1e300, 1, 0.5, beta=1e10), "`beta` times the reward overflows"),
        (lambda t: t.curated_retraining(torch.tensor([0.0, float("nan")]), 1, 0.5), "`reward` must be finite"),
        (lambda t: t.curated_retraining(torch.zeros(2, 2), 1, 0.5), "`reward` must be a 1-D real tensor"),
        (lambda t: t.curated_retraining([0.0, 1.0], 1, 0.5), "`reward` must be a 1-D real tensor"),
    ],
)
def test_curated_retraining_refuses_bad_inputs(call, match: str) -> None:  # type: ignore[no-untyped-def]
    import sclc_lightning.theory as theory

    with pytest.raises(ValueError, match=match):
        call(theory)
