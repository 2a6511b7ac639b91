r"""Closed forms of the papers' theory (Gillman et al. 2024, Thm. 4.3; Bertrand et al. 2024,
Thm. 1 and Prop. 1; Gerstgrasser et al. 2024, Thms. 1 and 2, for linear regression; He, Xu &
Cheng 2025, weighted mixing of fresh real and synthetic data; Ferbach et al. 2024, retraining on
curated samples mixed with real data).

Notation: :math:`\lambda` synthetic fraction, :math:`\gamma` correction strength, :math:`\alpha`
strong-concavity constant of the likelihood, :math:`\varepsilon` the generative model's error and
:math:`L` its Lipschitz constant, :math:`\tau(n)` the statistical error with n samples.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

__all__ = [
    "bertrand_is_stable",
    "bertrand_max_fraction",
    "bound_probability",
    "curated_retraining",
    "curation_kl_bound",
    "error_bound",
    "expected_log_sigma_ratio",
    "gaussian_collapse_rate",
    "golden_weight",
    "is_stable",
    "linear_regression_error",
    "linear_regression_error_limit",
    "log_sigma_ratio_std",
    "max_stable_fraction",
    "rho",
    "weighted_mixing_variance",
]


def _check(name: str, value: float, minimum: float = 0.0, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value) or value < minimum:
        raise ValueError(f"`{name}` must be a number >= {minimum}, got {value!r}.")
    if math.isinf(value) and not allow_inf:
        raise ValueError(f"`{name}` must be finite, got {value!r}.")
    return float(value)


def rho(synthetic_fraction: float, alpha: float, epsilon: float, lipschitz: float) -> float:
    r""":math:`\rho(\lambda) = \lambda(\alpha + \varepsilon L) / (\alpha - \lambda(\alpha + \varepsilon L))`;
    ``inf`` when :math:`\lambda(\alpha + \varepsilon L) \ge \alpha`.

    Examples:
        >>> round(rho(0.3, alpha=1.0, epsilon=0.1, lipschitz=1.0), 6)
        0.492537
    """
    lam = _check("synthetic_fraction", synthetic_fraction)
    a = _check("alpha", alpha)
    if a == 0:
        raise ValueError("`alpha` must be > 0, got 0.")
    k = lam * (a + _check("epsilon", epsilon) * _check("lipschitz", lipschitz))
    return math.inf if k >= a else k / (a - k)


def _contraction(synthetic_fraction: float, strength: float, alpha: float, epsilon: float, lipschitz: float) -> float:
    gamma = _check("strength", strength, allow_inf=True)
    r = rho(synthetic_fraction, alpha, epsilon, lipschitz)
    if math.isinf(gamma):
        return 0.0 if not math.isinf(r) else math.inf
    return r / (1.0 + gamma)


def is_stable(synthetic_fraction: float, strength: float, alpha: float, epsilon: float, lipschitz: float) -> bool:
    r"""Whether the loop is stable: :math:`\lambda(1 + \varepsilon L/\alpha) < (1+\gamma)/(2+\gamma)`,
    equivalently :math:`\rho(\lambda)/(1+\gamma) < 1`."""
    return _contraction(synthetic_fraction, strength, alpha, epsilon, lipschitz) < 1.0


def max_stable_fraction(strength: float, alpha: float, epsilon: float, lipschitz: float) -> float:
    r"""The largest stable :math:`\lambda` (a supremum, not attained):
    :math:`\frac{1+\gamma}{(2+\gamma)(1+\varepsilon L/\alpha)}`; below 1/2 without correction
    and approaching :math:`1/(1+\varepsilon L/\alpha)` as :math:`\gamma \to \infty`.

    Examples:
        >>> round(max_stable_fraction(0.0, alpha=1.0, epsilon=0.0, lipschitz=1.0), 6)
        0.5
    """
    gamma = _check("strength", strength, allow_inf=True)
    a = _check("alpha", alpha)
    if a == 0:
        raise ValueError("`alpha` must be > 0, got 0.")
    ratio = 1.0 if math.isinf(gamma) else (1.0 + gamma) / (2.0 + gamma)
    return ratio / (1.0 + _check("epsilon", epsilon) * _check("lipschitz", lipschitz) / a)


def bertrand_max_fraction(alpha: float, epsilon: float, lipschitz: float) -> float:
    r"""Bertrand et al. (2024), Thm. 1: iterative retraining on a mix of real data and a share
    :math:`\lambda` of the model's own samples is stable (the parameters stay within a ball of the
    optimum that shrinks to it) when :math:`\lambda(1 + L\varepsilon/\alpha) < 1` and the first
    model is close enough to the optimum; this is the supremum :math:`1/(1 + L\varepsilon/\alpha)`.

    Examples:
        >>> bertrand_max_fraction(alpha=1.0, epsilon=0.5, lipschitz=2.0)
        0.5
    """
    a = _check("alpha", alpha)
    if a == 0:
        raise ValueError("`alpha` must be > 0, got 0.")
    return 1.0 / (1.0 + _check("epsilon", epsilon) * _check("lipschitz", lipschitz) / a)


def bertrand_is_stable(synthetic_fraction: float, alpha: float, epsilon: float, lipschitz: float) -> bool:
    r"""Whether :math:`\lambda(1 + L\varepsilon/\alpha) < 1` (:func:`bertrand_max_fraction`).

    Examples:
        >>> bertrand_is_stable(0.4, alpha=1.0, epsilon=0.5, lipschitz=2.0), bertrand_is_stable(0.6, 1.0, 0.5, 2.0)
        (True, False)
    """
    return _check("synthetic_fraction", synthetic_fraction) < bertrand_max_fraction(alpha, epsilon, lipschitz)


def error_bound(
    t: int,
    synthetic_fraction: float,
    strength: float,
    alpha: float,
    epsilon: float,
    lipschitz: float,
    tau: float,
    initial_error: float,
) -> float:
    r"""Theorem 4.3's bound on :math:`\|\theta_t - \theta^*\|` after ``t`` generations,

    .. math::
        \tau(n) \sum_{i=0}^{t} \Big(\frac{\rho}{1+\gamma}\Big)^i
        + \Big(\frac{\rho}{1+\gamma}\Big)^t \|\theta_0 - \theta^*\|,

    holding with probability :math:`(1-\delta)^t` (:func:`bound_probability`).
    """
    if isinstance(t, bool) or not isinstance(t, int) or t < 0:
        raise ValueError(f"`t` must be an integer >= 0, got {t!r}.")
    q = _contraction(synthetic_fraction, strength, alpha, epsilon, lipschitz)
    tau, initial_error = _check("tau", tau), _check("initial_error", initial_error)
    if math.isinf(q):
        return math.inf
    geometric = t + 1 if q == 1.0 else (1.0 - q ** (t + 1)) / (1.0 - q)
    return tau * geometric + q**t * initial_error


def bound_probability(t: int, delta: float) -> float:
    r""":math:`(1-\delta)^t`, the probability with which :func:`error_bound` holds."""
    if not 0 <= delta <= 1:
        raise ValueError(f"`delta` must be in [0, 1], got {delta!r}.")
    return (1.0 - delta) ** t


def _divisor(n: int, estimator: str) -> int:
    """What the variance estimate divides by: :math:`n - 1` (unbiased) or :math:`n` (maximum likelihood)."""
    if estimator not in ("unbiased", "mle"):
        raise ValueError(f"`estimator` must be 'unbiased' or 'mle', got {estimator!r}.")
    return n - 1 if estimator == "unbiased" else n


def gaussian_collapse_rate(n: int, estimator: str = "unbiased") -> float:
    r"""Bertrand et al. Prop. 1: refitting a Gaussian on its own n samples with the unbiased
    estimator multiplies the expected standard deviation by

    .. math::
        \alpha(n) = \sqrt{\frac{2}{n-1}}\, \frac{\Gamma(n/2)}{\Gamma((n-1)/2)} < 1

    per generation; with the maximum-likelihood estimate (``estimator="mle"``, divided by
    :math:`n`) by :math:`\sqrt{(n-1)/n}\,\alpha(n)`.

    Examples:
        >>> round(gaussian_collapse_rate(10), 4), round(gaussian_collapse_rate(10, "mle"), 4)
        (0.9727, 0.9227)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"`n` must be an integer >= 2, got {n!r}.")
    divisor = _divisor(n, estimator)
    return math.sqrt(2.0 / divisor) * math.exp(math.lgamma(n / 2) - math.lgamma((n - 1) / 2))


def expected_log_sigma_ratio(t: int, n: int, temperature: float = 1.0, estimator: str = "unbiased") -> float:
    r""":math:`E[\log(\sigma_t/\sigma_0)]` for a Gaussian refitted on the :math:`n` points it
    samples at temperature :math:`\tau` (replace mode): each generation multiplies the variance
    by :math:`\tau^2 \chi^2_{n-1}/d`, :math:`d = n - 1` for the unbiased estimate (the default)
    and :math:`d = n` for the maximum-likelihood one (``estimator="mle"``), so

    .. math::
        E[\log(\sigma_t/\sigma_0)] = t\Big(\log\tau + \tfrac12\big(\psi(\tfrac{n-1}{2})
        + \log\tfrac{2}{d}\big)\Big).

    The expectation of the log, not the log of :math:`E[\sigma_t]/\sigma_0 = (\tau\alpha(n))^t`
    (:func:`gaussian_collapse_rate`): by Jensen's inequality it is the lower of the two.

    Examples:
        >>> round(expected_log_sigma_ratio(30, 10, 0.9), 3), round(expected_log_sigma_ratio(30, 10), 3)
        (-4.889, -1.728)
        >>> round(expected_log_sigma_ratio(30, 10, estimator="mle"), 3)
        -3.309
    """
    from scipy.special import digamma

    t, n, tau = _check_collapse(t, n, temperature)
    divisor = _divisor(n, estimator)
    return t * (math.log(tau) + 0.5 * (float(digamma((n - 1) / 2)) + math.log(2.0 / divisor)))


def log_sigma_ratio_std(t: int, n: int) -> float:
    r"""The standard deviation of :math:`\log(\sigma_t/\sigma_0)` in the setting of
    :func:`expected_log_sigma_ratio`: :math:`\sqrt{t\,\psi'(\tfrac{n-1}{2})/4}` (independent of
    the temperature and of the estimator, which only scales the variance by a constant).

    Examples:
        >>> round(log_sigma_ratio_std(30, 10), 3)
        1.366
    """
    from scipy.special import polygamma

    t, n, _ = _check_collapse(t, n, 1.0)
    return math.sqrt(t * float(polygamma(1, (n - 1) / 2)) / 4)


def _check_collapse(t: int, n: int, temperature: float) -> tuple[int, int, float]:
    if isinstance(t, bool) or not isinstance(t, int) or t < 0:
        raise ValueError(f"`t` must be an integer >= 0, got {t!r}.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"`n` must be an integer >= 2, got {n!r}.")
    tau = _check("temperature", temperature)
    if tau == 0:
        raise ValueError("`temperature` must be > 0, got 0.")
    return t, n, tau


def _check_regression(n: int, dim: int, noise_std: float) -> float:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"`dim` must be an integer >= 1, got {dim!r}.")
    if isinstance(n, bool) or not isinstance(n, int) or n < dim + 2:
        raise ValueError(f"`n` must be an integer >= dim + 2 = {dim + 2} (the expectation is finite), got {n!r}.")
    return _check("noise_std", noise_std) ** 2 * dim / (n - dim - 1)


def linear_regression_error(generation: int, n: int, dim: int, noise_std: float, mode: str) -> float:
    r"""Expected test error :math:`E\|\hat w_t - w^*\|^2` of least squares refitted on its own
    targets, after generation :math:`t` (generation 0 fits the real data), for a design of
    :math:`n` rows drawn from :math:`N(0, I_d)` and kept fixed (Gerstgrasser et al. 2024, Thms.
    1 and 2; Dey & Donoho):

    .. math::
        \text{replace: } \frac{\sigma^2 d}{n-d-1}\,(t+1), \qquad
        \text{accumulate: } \frac{\sigma^2 d}{n-d-1} \sum_{k=1}^{t+1} \frac{1}{k^2}
        < \frac{\sigma^2 d}{n-d-1}\,\frac{\pi^2}{6}.

    Each generation labels every real input once (``synthetic_fraction = 1``).

    Examples:
        >>> round(linear_regression_error(2, n=64, dim=8, noise_std=1.0, mode="replace"), 6)
        0.436364
        >>> round(linear_regression_error(1, n=64, dim=8, noise_std=1.0, mode="accumulate"), 6)
        0.181818
    """
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise ValueError(f"`generation` must be an integer >= 0, got {generation!r}.")
    scale = _check_regression(n, dim, noise_std)
    if mode == "replace":
        return scale * (generation + 1)
    if mode == "accumulate":
        return scale * sum(1.0 / k**2 for k in range(1, generation + 2))
    raise ValueError(f"`mode` must be 'replace' or 'accumulate', got {mode!r}.")


def linear_regression_error_limit(n: int, dim: int, noise_std: float) -> float:
    r"""The bound of :func:`linear_regression_error` under ``accumulate`` as :math:`t \to \infty`,
    :math:`\frac{\sigma^2 d}{n-d-1}\,\frac{\pi^2}{6}`.

    Examples:
        >>> round(linear_regression_error_limit(n=64, dim=8, noise_std=1.0), 6)
        0.239263
    """
    return _check_regression(n, dim, noise_std) * math.pi**2 / 6


def _check_mixing(weight: float, ratio: float, n: int) -> tuple[float, float]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be an integer >= 1, got {n!r}.")
    ratio = _check("ratio", ratio)
    if ratio == 0:
        raise ValueError("`ratio` (synthetic points per real one) must be > 0.")
    weight = _check("weight", weight)
    if not 0 < weight <= 1:
        raise ValueError(f"`weight` (of the real points) must be in (0, 1], got {weight!r}.")
    return weight, ratio


def golden_weight(ratio: float) -> float:
    r"""The weight of the fresh real points that minimises the stationary error of
    :func:`weighted_mixing_variance` (He, Xu & Cheng 2025), with ``ratio`` :math:`k` synthetic
    points per real one: the positive root of :math:`k w^2 + w - 1 = 0`,

    .. math:: w^* = \frac{\sqrt{1 + 4k} - 1}{2k},

    the reciprocal of the golden ratio at :math:`k = 1`.

    Examples:
        >>> [round(golden_weight(k), 4) for k in (0.5, 1, 2)]
        [0.7321, 0.618, 0.5]
    """
    _check_mixing(1.0, ratio, 1)
    return (math.sqrt(1 + 4 * ratio) - 1) / (2 * ratio)


def weighted_mixing_variance(generation: int | None, weight: float, ratio: float, n: int, sigma: float = 1.0) -> float:
    r"""The variance of a Gaussian's fitted mean when each generation fits, with weights
    :math:`w` and :math:`1 - w`, :math:`n` fresh real points and :math:`kn` points sampled from
    the previous fit (He, Xu & Cheng 2025; the variance :math:`\sigma^2` known):

    .. math::
        V_t = \frac{w^2\sigma^2}{n} + (1-w)^2\Big(V_{t-1} + \frac{\sigma^2}{kn}\Big),
        \qquad V_0 = \frac{\sigma^2}{n},

    and, for ``generation=None``, its stationary value

    .. math:: V_\infty = \frac{\sigma^2}{n}\,\frac{w^2 + (1-w)^2/k}{w(2-w)},

    smallest at :func:`golden_weight`, where it equals :math:`w^*\sigma^2/n`, below the
    :math:`\sigma^2/n` of the fresh real points alone (:math:`w = 1`).

    Examples:
        >>> round(weighted_mixing_variance(None, golden_weight(1.0), ratio=1.0, n=100), 6)
        0.00618
        >>> weighted_mixing_variance(None, 0.5, 1.0, 100) > weighted_mixing_variance(None, 0.618, 1.0, 100)
        True
    """
    weight, ratio = _check_mixing(weight, ratio, n)
    scale = _check("sigma", sigma) ** 2 / n
    if generation is None:
        return scale * (weight**2 + (1 - weight) ** 2 / ratio) / (weight * (2 - weight))
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise ValueError(f"`generation` must be an integer >= 0 or None (stationary), got {generation!r}.")
    variance = scale
    for _ in range(generation):
        variance = weight**2 * scale + (1 - weight) ** 2 * (variance + scale / ratio)
    return variance


def curation_kl_bound(real_share: float) -> float:
    r"""The bound on the real data's divergence from a model retrained on a mixture that gives
    the real data a share :math:`s > 0`: if :math:`p = s\,p_{\rm data} + (1 - s)\,q` for any
    :math:`q` (curated samples of any model, under any reward), then :math:`p \ge s\,p_{\rm
    data}` everywhere and

    .. math:: \mathrm{KL}(p_{\rm data} \,\|\, p) = E_{p_{\rm data}}\Big[\log\frac{p_{\rm data}}{p}\Big]
        \le -\log s = \log(1 + \lambda),

    with :math:`\lambda = (1 - s)/s` synthetic points per real one (Ferbach et al. 2024's
    mixing with real data, at the population level: every generation fits its training mixture
    exactly).

    Examples:
        >>> round(curation_kl_bound(0.5), 4)  # half real data: log 2
        0.6931
    """
    share = _check("real_share", real_share)
    if not 0 < share <= 1:
        raise ValueError(f"`real_share` must be in (0, 1], got {real_share!r}.")
    return max(0.0, -math.log(share))  # 0.0, not -0.0, at s = 1


def _choice_factor(
    tilt: Tensor, probability: Tensor, candidates: int | None, draws: int, generator: torch.Generator | None
) -> Tensor:
    """:math:`H_K` at every point: the density of the kept candidate over the model's, when one of
    ``candidates`` draws is kept with probability proportional to ``exp(tilt)`` (``tilt``: the
    log-weights, at most 0; ``None``: the :math:`K \\to \\infty` limit, ``exp(tilt)`` over
    its mean). Monte Carlo over ``draws`` sets of
    the other candidates, normalised to mean 1 under the model."""
    if candidates is None:
        factor = tilt.exp()
    elif candidates == 1:  # nothing to choose from
        factor = torch.ones_like(tilt)
    else:  # e^{l_i} / (e^{l_i} + sum_j e^{l_j}) as a sigmoid of log-sums: no overflow for any beta
        others = torch.multinomial(probability, draws * (candidates - 1), replacement=True, generator=generator)
        rest = tilt[others].view(draws, candidates - 1).logsumexp(1)
        factor = torch.cat([torch.sigmoid(part[:, None] - rest[None]).mean(1) for part in tilt.split(2048)])
    return factor / (probability * factor).sum()


def curated_retraining(
    reward: Tensor,
    generations: int,
    real_share: float,
    num_candidates: int | None = 4,
    beta: float = 1.0,
    draws: int = 4096,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""The population dynamics of retraining on curated samples mixed with real data
    (Ferbach et al. 2024), with every generation fitting its training mixture exactly:

    .. math:: p_{t+1} = s\,p_{\rm data} + (1 - s)\,p_t H_K^{p_t}, \qquad p_0 = p_{\rm data},

    where one of :math:`K` candidates of :math:`p_t` is kept with probability proportional to
    :math:`e^{\beta r}` (:math:`H_K \to e^{\beta r}/E_{p_t}[e^{\beta r}]` as :math:`K \to \infty`,
    ``num_candidates=None``). The densities are carried as ratios :math:`\rho_t = p_t/p_{\rm data}`
    at points of :math:`p_{\rm data}` whose rewards are ``reward`` ``(M,)``, so that
    :math:`\mathrm{KL}(p_{\rm data}\|p_t) = -E[\log\rho_t]` (at most
    :func:`curation_kl_bound`) and any share of :math:`p_t`, e.g. a mode's weight, is a mean of
    :math:`\rho_t`. :math:`H_K` is a Monte Carlo estimate over ``draws`` candidate sets, drawn
    with ``generator``.

    Returns:
        the ratios :math:`\rho_t` at the points, shape ``(generations + 1, M)``, float64.

    Examples:
        >>> reward = torch.linspace(-2, 2, 1001)
        >>> ratios = curated_retraining(reward, 20, real_share=0.5, num_candidates=None)
        >>> kl = -ratios.log().mean(1)
        >>> bool(kl[-1] < curation_kl_bound(0.5)), bool(kl[-1] > kl[1] > 0)
        (True, True)
    """
    values = _check_reward(reward)
    share, generations, num_candidates, draws, beta = _check_curation(
        real_share, generations, num_candidates, draws, beta
    )
    logits = beta * values
    if not torch.isfinite(logits).all():
        raise ValueError(f"`beta` times the reward overflows float64 (beta {beta}); use a smaller beta.")
    tilt = logits - logits.max()  # log-weights, at most 0 whatever the sign of beta
    ratios = [torch.ones_like(values)]
    for generation in range(generations):
        current = ratios[-1]
        factor = _choice_factor(tilt, current / current.sum(), num_candidates, draws, generator)
        ratios.append(share + (1 - share) * current * factor)
        if not torch.isfinite(ratios[-1]).all() or not bool((ratios[-1] > 0).any()):
            raise FloatingPointError(
                f"curated_retraining: the density ratios left float64's range at generation {generation + 1} "
                f"(beta {beta} times the reward's spread {float(values.max() - values.min()):.4g}); "
                "use fewer generations or a smaller beta."
            )
    return torch.stack(ratios)


def _check_curation(
    real_share: float, generations: int, num_candidates: int | None, draws: int, beta: float
) -> tuple[float, int, int | None, int, float]:
    """:func:`curated_retraining`'s arguments checked, as Python numbers."""
    share = _check("real_share", real_share)
    if not 0 <= share <= 1:
        raise ValueError(f"`real_share` must be in [0, 1], got {real_share!r}.")
    for name, count in (("generations", generations), ("draws", draws)):
        least = 0 if name == "generations" else 1
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < least:
            raise ValueError(f"`{name}` must be an integer >= {least}, got {count!r}.")
    if num_candidates is not None and (
        isinstance(num_candidates, bool) or not isinstance(num_candidates, numbers.Integral) or num_candidates < 1
    ):
        raise ValueError(f"`num_candidates` must be an integer >= 1 or None (the limit), got {num_candidates!r}.")
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not math.isfinite(beta):
        raise ValueError(f"`beta` must be a finite number, got {beta!r}.")
    candidates = None if num_candidates is None else int(num_candidates)
    return share, int(generations), candidates, int(draws), float(beta)


def _check_reward(reward: Tensor) -> Tensor:
    if not isinstance(reward, Tensor) or reward.dim() != 1 or len(reward) < 2 or reward.is_complex():
        raise ValueError(f"`reward` must be a 1-D real tensor of at least 2 values, got {reward!r}.")
    values = reward.detach().double().cpu()
    if not torch.isfinite(values).all():
        raise ValueError("`reward` must be finite everywhere; it has NaN or infinite values.")
    return values
