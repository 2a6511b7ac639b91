r"""A live stability monitor: after each generation, where the run stands against the theory,
logged (and shown in the progress bar) while the run goes, with one plain warning when it leaves
the stable region.

Three views, each used when it applies:

- **the exact Gaussian** (a model that declares it: a ``variance_estimator`` attribute,
  ``"unbiased"`` or ``"mle"``, and a ``sigma`` attribute, as
  :class:`~sclc_lightning.models.GaussianModel` has; replace mode, :math:`\lambda = 1`, no
  corrector of points or weights): :math:`\log(\sigma_t/\sigma_0)` against its expectation
  :math:`t(\log\tau + \tfrac12(\psi(\tfrac{n-1}2) + \log\tfrac{2}{d}))`, :math:`d = n - 1`
  (unbiased) or :math:`n` (maximum likelihood), and the band of ``band`` standard deviations
  :math:`\sqrt{t\,\psi'(\tfrac{n-1}2)/4}` (:func:`~sclc_lightning.theory.expected_log_sigma_ratio`);
- **any model, given Bertrand et al.'s constants** (``alpha``, ``epsilon``, ``lipschitz``): the
  synthetic fraction against the stable region :math:`\lambda(1 + L\varepsilon/\alpha) < 1`
  (:func:`~sclc_lightning.theory.bertrand_max_fraction`);
- **any model, a drift statistic**: a metric another callback logs (``c2st_auc`` of
  :class:`~sclc_lightning.callbacks.DetectorMetrics` by default) against a threshold.

A generation is read once every hook of its epoch has run, whatever the order of the callbacks:
Lightning runs the callbacks' ``on_train_epoch_end`` before the module's, so a model that fits or
logs there would be read a generation late by a callback reading at that hook. The monitor keeps
the generation pending and reads it when the loop ends the generation (before it samples the
next), at the next epoch's start, at the checkpoint saved at the generation's end, or at the
fit's end, whichever comes first; its values go to the loggers, ``callback_metrics`` (so
:class:`~sclc_lightning.callbacks.GenerationCSV` writes them in the generation's row) and the
progress bar.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from sclc_lightning import _lightning_compat as compat
from sclc_lightning._checks import NON_NEGATIVE, POSITIVE, bounded, check_arguments, check_number, plain_numbers
from sclc_lightning._trainer import GenerationMetricProducer, current_generation, find_loop

__all__ = ["StabilityMonitor"]


@plain_numbers
class StabilityMonitor(GenerationMetricProducer, Callback):
    r"""Log, each generation, where the run stands against the theory, and warn once per view
    when it leaves the stable region (see the module's documentation).

    Logged (and shown in the progress bar's postfix): ``log_sigma_ratio``,
    ``log_sigma_expected`` and ``log_sigma_z`` (the distance from the expectation in standard
    deviations) for the exact Gaussian; ``bertrand_margin`` (the largest stable :math:`\lambda`
    minus this generation's) with the constants; the drift metric is already logged by its
    callback. The monitor may stand anywhere in the callback list. A watched drift metric that
    never appears is said once (with the nearest logged name, for a typo).

    Args:
        band: how many standard deviations from the expectation count as inside (> 0).
        alpha: Bertrand et al.'s strong-concavity constant α > 0 (give the three constants or none).
        epsilon: the model's error ε >= 0.
        lipschitz: its Lipschitz constant L >= 0.
        drift_metric: a metric to watch: a logged metric's name, ``None`` (none) or ``"auto"``
            (default: ``c2st_auc`` when a :class:`~sclc_lightning.callbacks.DetectorMetrics` is
            among the callbacks, else none). A name that is never logged is said once.
        drift_threshold: the drift metric's value past which the run has drifted (in [0, 1] when
            the metric is the detector's ``c2st_auc``, as with ``"auto"``).

    Raises:
        ValueError: an argument out of range, naming it and the value.

    Examples:
        >>> from sclc_lightning.callbacks import StabilityMonitor
        >>> monitor = StabilityMonitor(band=3.0, alpha=1.0, epsilon=0.1, lipschitz=2.0)
    """

    # drift_threshold's range depends on the metric watched: checked on its own
    ranges = bounded(band=POSITIVE, alpha=POSITIVE, epsilon=NON_NEGATIVE, lipschitz=NON_NEGATIVE)

    def __init__(
        self,
        band: float = 3.0,
        alpha: float | None = None,
        epsilon: float | None = None,
        lipschitz: float | None = None,
        drift_metric: str | None = "auto",
        drift_threshold: float = 0.75,
    ) -> None:
        constants = (alpha, epsilon, lipschitz)
        if any(c is None for c in constants) and not all(c is None for c in constants):
            raise ValueError("Give all of `alpha`, `epsilon` and `lipschitz` (Bertrand et al.'s constants) or none.")
        if drift_metric is not None and (not isinstance(drift_metric, str) or not drift_metric):
            raise ValueError(f"`drift_metric` must be a metric's name or None, got {drift_metric!r}.")
        check_arguments(StabilityMonitor, {k: v for k, v in locals().items() if k != "drift_threshold"})
        auc = drift_metric in ("auto", "c2st_auc")  # the detector's AUC lies in [0, 1]
        self.drift_threshold = check_number(
            "drift_threshold", drift_threshold, minimum=0 if auc else None, maximum=1 if auc else None
        )
        self.band = float(band)
        self.alpha = None if alpha is None else float(alpha)
        self.epsilon = None if epsilon is None else float(epsilon)
        self.lipschitz = None if lipschitz is None else float(lipschitz)
        self.drift_metric = drift_metric
        self._watched: str | None = None if drift_metric == "auto" else drift_metric
        self._trainer_for_state: pl.Trainer | None = None
        self.first_sigma: float | None = None
        self.warned: set[str] = set()
        self._pending: int | None = None
        self._drift_seen = False

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._pending = current_generation(trainer)  # read once every other epoch-end hook has run

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.settle(trainer, pl_module)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.settle(trainer, pl_module)
        if self._watched is not None and not self._drift_seen:
            self._warn("drift_missing", self._missing_metric_message(trainer))

    def settle(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Read the pending generation (see the module's documentation)."""
        generation, self._pending = self._pending, None
        if generation is None:
            return
        values = {**self._gaussian(trainer, pl_module, generation), **self._bertrand(trainer, generation)}
        if values:
            if trainer.is_global_zero:
                for logger in trainer.loggers:
                    logger.log_metrics(dict(values), step=trainer.global_step)
            compat.publish_metrics(trainer, values, prog_bar=True)
        self._drift(trainer, generation)

    def _gaussian(self, trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> dict[str, float]:
        from sclc_lightning.theory import expected_log_sigma_ratio, log_sigma_ratio_std

        estimator = getattr(pl_module, "variance_estimator", None)
        loop: Any = find_loop(trainer)
        if estimator not in ("unbiased", "mle") or loop is None or not _gaussian_replace(loop):
            return {}
        sigma = float(pl_module.sigma)  # type: ignore[arg-type]
        if generation == loop.config.first_generation:
            self.first_sigma = sigma
            return {"log_sigma_ratio": 0.0, "log_sigma_expected": 0.0, "log_sigma_z": 0.0}
        if self.first_sigma is None:
            self._warn(
                "gaussian_start",
                f"Generation {generation}: σ of the first generation is unknown (the fit resumed from a checkpoint"
                " that does not hold it), so the exact-Gaussian view is off for this fit.",
            )
            return {}
        if not sigma > 0 or not self.first_sigma > 0:
            # collapsed to a point (or the precision of the samples' dtype): log σ is undefined;
            # NaN, not the previous generation's values, goes into this generation's row
            self._warn(
                "gaussian_zero",
                f"Generation {generation}: σ = {sigma:g}, so log(σ_t/σ_0) is undefined from here on (the samples"
                " collapsed to a point or below their dtype's precision); logged as NaN.",
            )
            nan = math.nan
            return {"log_sigma_ratio": nan, "log_sigma_expected": nan, "log_sigma_z": nan}
        n, tau = loop.n, float(loop.sample_kwargs.get("temperature", 1.0))
        observed = math.log(sigma / self.first_sigma)
        expected = expected_log_sigma_ratio(generation, n, tau, estimator=estimator)
        z = (observed - expected) / log_sigma_ratio_std(generation, n)
        if abs(z) > self.band:
            self._warn(
                "gaussian",
                f"Generation {generation}: log(σ_t/σ_0) = {observed:.3f} is {abs(z):.1f} standard deviations from"
                f" the exact Gaussian's expectation {expected:.3f} ({estimator} variance; band ±{self.band:g}); the"
                " fit is not following the theory (a sampler bias, or not the exact model).",
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
        if self._watched is None:
            return
        value = _metric(trainer, self._watched)
        if value is None:
            near = difflib.get_close_matches(self._watched, [str(k) for k in trainer.callback_metrics], n=1)
            if near:  # a typo: say it now rather than at the fit's end
                self._warn("drift_missing", self._missing_metric_message(trainer))
            return
        self._drift_seen = True
        if value > self.drift_threshold:
            self._warn(
                "drift",
                f"Generation {generation}: {self._watched} = {value:.3f} is above {self.drift_threshold:g}: a"
                " classifier tells the model's samples from real data; the model has drifted.",
            )

    def _missing_metric_message(self, trainer: pl.Trainer) -> str:
        logged = sorted(str(k) for k in trainer.callback_metrics)
        near = difflib.get_close_matches(str(self._watched), logged, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        return (
            f"`drift_metric` {self._watched!r} was never logged, so the drift view never ran.{hint} Logged"
            f" metrics: {logged[:12]}{' ...' if len(logged) > 12 else ''}; add the callback that logs it (e.g."
            " DetectorMetrics for 'c2st_auc') or pass drift_metric=None."
        )

    def _warn(self, kind: str, message: str) -> None:
        if kind not in self.warned:
            self.warned.add(kind)
            rank_zero_warn(f"StabilityMonitor: {message} (said once)")

    @override
    def state_dict(self) -> dict[str, Any]:
        # a checkpoint saved at the generation's end runs after every other epoch-end hook
        trainer = getattr(self, "_trainer_for_state", None)
        if trainer is not None and self._pending is not None:
            self.settle(trainer, trainer.lightning_module)
        return {"first_sigma": self.first_sigma, "warned": sorted(self.warned), "drift_seen": self._drift_seen}

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer_for_state, self._pending = trainer, None
        if self.drift_metric == "auto":
            from sclc_lightning.metrics.detector import DetectorMetrics

            detects = any(isinstance(c, DetectorMetrics) for c in trainer.callbacks)  # type: ignore[attr-defined]
            self._watched = DetectorMetrics.headline if detects else None

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.first_sigma = state_dict.get("first_sigma")
        self.warned = set(state_dict.get("warned", []))
        self._drift_seen = bool(state_dict.get("drift_seen", False))


def _metric(trainer: pl.Trainer, name: str) -> float | None:
    value = trainer.callback_metrics.get(name)
    return None if value is None else float(value)


def _gaussian_replace(loop: Any) -> bool:
    """Whether the loop runs the exact Gaussian's setting of the theory: replace, λ = 1, no
    corrector of points or weights, no sampling setting but a temperature."""
    settings = loop.sample_kwargs
    return (
        loop.mode == "replace"
        and loop.config.schedule is None
        and loop.synthetic_fraction == 1.0
        and loop.corrector is None
        and loop.config.model_corrector is None
        and set(settings) <= {"temperature"}
    )
