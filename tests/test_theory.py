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
