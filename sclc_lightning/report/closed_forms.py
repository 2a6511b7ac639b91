r"""The built-in theories, registered here in one place, and the stability bound a legend names.

- ``"gaussian"`` (:class:`GaussianTheory`, declared by
  :class:`~sclc_lightning.models.GaussianModel`): a Gaussian fitted exactly on the latest
  synthetic set only collapses, ``sigma`` following :math:`\sigma_0\,\alpha(n)^t` (Bertrand et al.
  Prop. 1) and ``log_sigma_ratio`` :math:`E[\log \sigma_t/\sigma_0]`
  (:func:`~sclc_lightning.theory.expected_log_sigma_ratio`);
- ``"linear_regression"`` (:class:`LinearRegressionTheory`, declared by
  :class:`~sclc_lightning.models.LinearRegressionModel`): least squares refitted on its own
  targets, ``test_error`` after Gerstgrasser et al.
  (:func:`~sclc_lightning.theory.linear_regression_error`), replacing or accumulating;

  both theories of the loop left to itself (:attr:`~sclc_lightning.report.theory.Theory.covers_correction`
  is ``False``): drawn only over groups with no corrector (or the identity, or γ = 0) and no
  corrector of the weights, for every metric;
- :func:`stability_note`: Gillman et al. Thm. 4.3's bound on :math:`\lambda` for runs that
  augment the real data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from sclc_lightning.report.methods import selects, strength
from sclc_lightning.report.runs import Run
from sclc_lightning.report.theory import Theory, TheoryCurve, TheoryGroup, read_mixing, register_theory
from sclc_lightning.theory import (
    expected_log_sigma_ratio,
    gaussian_collapse_rate,
    linear_regression_error,
    max_stable_fraction,
)

__all__ = ["GaussianTheory", "LinearRegressionTheory", "stability_note"]


@register_theory("gaussian")
class GaussianTheory(Theory):
    r"""A Gaussian fitted exactly on its own samples (Bertrand et al. Prop. 1): with :math:`n`
    real points (the DataModule's ``n``), each generation on the latest synthetic set only,
    sampled at temperature :math:`\tau`, no corrector on the data or the weights (a theory of
    the uncorrected loop: drawn only over groups without correction, for every metric).

    Derives ``log_sigma_ratio``, :math:`\log(\sigma_t/\sigma_0)`, from ``sigma``: the statistic
    whose expectation the theory gives. The model's ``estimator`` setting (``"unbiased"`` by
    default, or ``"mle"``) decides the rate.
    """

    def curve(self, metric: str, group: TheoryGroup) -> TheoryCurve | None:
        n, tau = group.init_args("data").get("n"), group.temperature()
        loop, estimator = group.loop, group.init_args("model").get("estimator", "unbiased")
        if not (group.mixing is not None and group.mixing.replaces and isinstance(n, int) and tau is not None):
            return None
        if estimator not in ("unbiased", "mle"):
            return None
        start = group.generations[0]
        if metric == "sigma":
            rate = tau * gaussian_collapse_rate(n, estimator)
            label = "σ₀ α(n)ᵗ (theory)" if tau == 1 else f"σ₀ (τ α(n))ᵗ, τ = {tau:g} (theory)"
            return TheoryCurve(label, [group.mean("sigma", start) * rate ** (g - start) for g in group.generations])
        if metric == "log_sigma_ratio" and loop.get("synthetic_fraction") == 1:
            values = [expected_log_sigma_ratio(g - start, n, tau, estimator) for g in group.generations]
            return TheoryCurve("E[log σₜ/σ₀] (theory)", values)
        return None

    def derive(self, series: Mapping[str, Mapping[int, float]]) -> dict[str, dict[int, float]]:
        sigma = series.get("sigma") or {}
        start = sigma[min(sigma)] if sigma else 0.0
        if start <= 0:
            return {}
        return {"log_sigma_ratio": {g: math.log(v / start) for g, v in sigma.items() if v > 0}}


@register_theory("linear_regression")
class LinearRegressionTheory(Theory):
    """Least squares refitted on its own targets (Gerstgrasser et al. 2024): the expected test
    error with :math:`n` real inputs in dimension :math:`d` (the DataModule's ``n``, ``dim`` and
    ``noise_std``, which the model's own ``noise_std`` must equal), every input relabelled each
    generation (λ = 1), no corrector (drawn only over groups without correction, the identity or
    γ = 0 included), the targets replaced or accumulated."""

    def curve(self, metric: str, group: TheoryGroup) -> TheoryCurve | None:
        data, loop, mixing = group.init_args("data"), group.loop, group.mixing
        n, dim, noise = data.get("n"), data.get("dim"), data.get("noise_std")
        if metric != "test_error" or mixing is None or not (mixing.replaces or mixing.accumulates):
            return None
        if loop.get("sample_kwargs") or loop.get("synthetic_fraction") != 1:
            return None
        if group.init_args("model").get("noise_std", noise) != noise or not isinstance(noise, (int, float)):
            return None
        if not (isinstance(n, int) and isinstance(dim, int) and n >= dim + 2):
            return None
        mode = "replace" if mixing.replaces else "accumulate"
        label = "σ²d/(n−d−1)·(t+1) (theory)" if mixing.replaces else "σ²d/(n−d−1)·Σ1/k² (theory)"
        return TheoryCurve(label, [linear_regression_error(g, n, dim, float(noise), mode) for g in group.generations])


def stability_note(runs: list[Run]) -> str | None:
    r"""A warning for a group whose :math:`\lambda` is at or above the stability bound of
    Gillman et al. Thm. 4.3, in its most favourable case (:math:`\varepsilon L/\alpha \to 0`):
    :math:`\lambda < (1+\gamma)/(2+\gamma)`. The theorem is about the whole real data augmented
    with the latest synthetic set, so only runs whose mixing policy plans that get one.

    Examples:
        >>> from pathlib import Path
        >>> run = Run(Path("r"), {"loop": {"synthetic_fraction": 0.75, "mode": "augment"}}, [])
        >>> stability_note([run])
        'λ=0.75 ≥ (1+γ)/(2+γ)=0.50: outside the stability bound (Gillman Thm. 4.3)'
        >>> run.config["loop"].update(corrector="optimal_transport", corrector_kwargs={"strength": 5.0})
        >>> stability_note([run]) is None  # (1+5)/(2+5) = 0.86
        True
    """
    loop = runs[0].loop
    fraction, gamma = loop.get("synthetic_fraction"), strength(loop)
    if not isinstance(fraction, (int, float)) or fraction <= 0 or gamma is None:
        return None
    if selects(loop.get("corrector")):  # curation and verification do not pull toward the data: not Thm. 4.3's
        return None
    mixing = read_mixing(runs[0])
    if mixing is None or not mixing.augments:
        return None
    bound = max_stable_fraction(gamma, alpha=1.0, epsilon=0.0, lipschitz=0.0)
    if fraction < bound:
        return None
    return f"λ={fraction} ≥ (1+γ)/(2+γ)={bound:.2f}: outside the stability bound (Gillman Thm. 4.3)"
