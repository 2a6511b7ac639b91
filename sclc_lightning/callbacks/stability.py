r"""A live stability monitor: after each generation, where the run stands against the theory,
logged (and shown in the progress bar) while the run goes, with one plain warning when it leaves
the stable region.

Three views, each used when it applies:

- **the exact Gaussian** (a model logging ``sigma``, replace mode, :math:`\lambda = 1`, no
  corrector): :math:`\log(\sigma_t/\sigma_0)` against its expectation
  :math:`t(\log\tau + \tfrac12(\psi(\tfrac{n-1}2) + \log\tfrac{2}{n-1}))` and the band of ``band``
  standard deviations :math:`\sqrt{t\,\psi'(\tfrac{n-1}2)/4}`
  (:func:`~sclc_lightning.theory.expected_log_sigma_ratio`);
- **any model, given Bertrand et al.'s constants** (``alpha``, ``epsilon``, ``lipschitz``): the
  synthetic fraction against the stable region :math:`\lambda(1 + L\varepsilon/\alpha) < 1`
  (:func:`~sclc_lightning.theory.bertrand_max_fraction`);
- **any model, a drift statistic**: a metric another callback logs (``c2st_auc`` of
  :class:`~sclc_lightning.callbacks.DetectorMetrics` by default) against a threshold.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from sclc_lightning._trainer import current_generation, find_loop

__all__ = ["StabilityMonitor"]


class StabilityMonitor(Callback):
    r"""Log, each generation, where the run stands against the theory, and warn once per view
    when it leaves the stable region (see the module's documentation).

    Logged (with ``prog_bar=True``, so the progress bar's postfix shows them): ``log_sigma_ratio``,
    ``log_sigma_expected`` and ``log_sigma_z`` (the distance from the expectation in standard
    deviations) for the exact Gaussian; ``bertrand_margin`` (the largest stable :math:`\lambda`
    minus this generation's) with the constants; the drift metric is already logged by its
    callback. Put the monitor after the callbacks whose metrics it reads.

    Args:
        band: how many standard deviations from the expectation count as inside.
        alpha: Bertrand et al.'s strong-concavity constant α (give the three constants or none).
        epsilon: the model's error ε.
        lipschitz: its Lipschitz constant L.
        drift_metric: a metric to watch (``None``: none).
        drift_threshold: the drift metric's value past which the run has drifted.

    Examples:
        >>> from sclc_lightning.callbacks import StabilityMonitor
        >>> monitor = StabilityMonitor(band=3.0, alpha=1.0, epsilon=0.1, lipschitz=2.0)
    """

    def __init__(
        self,
        band: float = 3.0,
        alpha: float | None = None,
        epsilon: float | None = None,
        lipschitz: float | None = None,
        drift_metric: str | None = "c2st_auc",
        drift_threshold: float = 0.75,
    ) -> None:
        constants = (alpha, epsilon, lipschitz)
        if any(c is None for c in constants) and not all(c is None for c in constants):
            raise ValueError("Give all of `alpha`, `epsilon` and `lipschitz` (Bertrand et al.'s constants) or none.")
        if not band > 0:
            raise ValueError(f"`band` must be > 0, got {band!r}.")
        self.band, self.alpha, self.epsilon, self.lipschitz = float(band), alpha, epsilon, lipschitz
        self.drift_metric, self.drift_threshold = drift_metric, float(drift_threshold)
        self.first_sigma: float | None = None
        self.warned: set[str] = set()

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        generation = current_generation(trainer)
        values = {**self._gaussian(trainer, generation), **self._bertrand(trainer, generation)}
        if values:
            pl_module.log_dict(values, on_step=False, on_epoch=True, prog_bar=True)
        self._drift(trainer, generation)

    def _gaussian(self, trainer: pl.Trainer, generation: int) -> dict[str, float]:
        from sclc_lightning.theory import expected_log_sigma_ratio, log_sigma_ratio_std

        sigma = _metric(trainer, "sigma")
        loop: Any = find_loop(trainer)
        if sigma is None or loop is None or not _gaussian_replace(loop):
            return {}
        if generation == 0 or self.first_sigma is None:
            self.first_sigma = sigma
            return {"log_sigma_ratio": 0.0, "log_sigma_expected": 0.0, "log_sigma_z": 0.0}
        if sigma <= 0 or self.first_sigma <= 0:
            return {}
        n, tau = loop.n, float(loop.sample_kwargs.get("temperature", 1.0))
        observed = math.log(sigma / self.first_sigma)
        expected = expected_log_sigma_ratio(generation, n, tau)
        z = (observed - expected) / log_sigma_ratio_std(generation, n)
        if abs(z) > self.band:
            self._warn(
                "gaussian",
                f"Generation {generation}: log(σ_t/σ_0) = {observed:.3f} is {abs(z):.1f} standard deviations from"
                f" the exact Gaussian's expectation {expected:.3f} (band ±{self.band:g}); the fit is not following"
                " the theory (a sampler bias, a corrector, or not the exact model).",
            )
        return {"log_sigma_ratio": observed, "log_sigma_expected": expected, "log_sigma_z": z}

    def _bertrand(self, trainer: pl.Trainer, generation: int) -> dict[str, float]:
        from sclc_lightning.theory import bertrand_max_fraction

        loop: Any = find_loop(trainer)
        if self.alpha is None or loop is None or generation < 1:
            return {}
        assert self.epsilon is not None and self.lipschitz is not None
        bound = bertrand_max_fraction(self.alpha, self.epsilon, self.lipschitz)
        fraction = loop.config.fraction_at(generation)
        if fraction >= bound:
            self._warn(
                "bertrand",
                f"Generation {generation}: the synthetic fraction λ = {fraction:g} is at or above"
                f" 1/(1 + Lε/α) = {bound:.3f}, outside the region where Bertrand et al. (Thm. 1) prove the"
                " loop stable.",
            )
        return {"bertrand_margin": bound - fraction}

    def _drift(self, trainer: pl.Trainer, generation: int) -> None:
        if self.drift_metric is None:
            return
        value = _metric(trainer, self.drift_metric)
        if value is not None and value > self.drift_threshold:
            self._warn(
                "drift",
                f"Generation {generation}: {self.drift_metric} = {value:.3f} is above {self.drift_threshold:g}: a"
                " classifier tells the model's samples from real data; the model has drifted.",
            )

    def _warn(self, kind: str, message: str) -> None:
        if kind not in self.warned:
            self.warned.add(kind)
            rank_zero_warn(f"StabilityMonitor: {message} (said once)")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"first_sigma": self.first_sigma, "warned": sorted(self.warned)}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.first_sigma = state_dict.get("first_sigma")
        self.warned = set(state_dict.get("warned", []))


def _metric(trainer: pl.Trainer, name: str) -> float | None:
    value = trainer.callback_metrics.get(name)
    return None if value is None else float(value)


def _gaussian_replace(loop: Any) -> bool:
    """Whether the loop runs the exact Gaussian's setting of the theory: replace, λ = 1, no
    corrector, no sampling setting but a temperature."""
    settings = loop.sample_kwargs
    return (
        loop.mode == "replace"
        and loop.config.schedule is None
        and loop.synthetic_fraction == 1.0
        and loop.corrector is None
        and set(settings) <= {"temperature"}
    )
