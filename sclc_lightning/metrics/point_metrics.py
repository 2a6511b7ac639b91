"""A callback that evaluates a point-cloud model after every generation."""

from __future__ import annotations

import lightning.pytorch as pl
from torch import Tensor

from sclc_lightning._checks import POSITIVE, bounded, check_arguments, plain_numbers
from sclc_lightning.metrics.evaluator import GenerationEvaluator, held_out
from sclc_lightning.metrics.functional import frechet_distance, mmd_rbf, mode_statistics, moment_drift

__all__ = ["PointMetrics"]


@plain_numbers
class PointMetrics(GenerationEvaluator):
    """Sample ``num_samples`` points after each generation and compare them with held-out data.

    Logs ``frechet``, ``mmd`` (Gaussian kernel), ``mean_drift`` and ``cov_drift`` against the
    DataModule's test split; for DataModules with mode ``centres``
    (eight Gaussians) also ``mode_coverage`` and ``mode_spread``. The number of samples is the
    same every generation and the draw is seeded by (seed, generation), so values are comparable.
    Under DDP the samples are shared out over the ranks and gathered; every rank computes the
    same values. ``time_evaluating_s`` logs how long the evaluation took. A conditional model
    (the loop's ``condition_field``) is asked for the held-out labels, as the loop asks it for
    real labels; the samples come from the loop's sampler.

    Args:
        num_samples: points sampled per evaluation.
        every: evaluate every ``every`` generations (and always at generation 0).
        mode_radius: a sample within this distance of a centre counts for that mode.
        batch_size: points per ``sample`` call.
        seed: seed of the evaluation draws; `None` (default) takes the run's seed (the loop's).

    Examples:
        >>> from sclc_lightning.callbacks import PointMetrics
        >>> metrics = PointMetrics(num_samples=2000, every=10)
    """

    headline = "frechet"
    ranges = bounded(mode_radius=POSITIVE)

    def __init__(
        self,
        num_samples: int = 2000,
        every: int = 1,
        mode_radius: float = 0.5,
        batch_size: int = 10_000,
        seed: int | None = None,
    ) -> None:
        check_arguments(PointMetrics, locals())
        super().__init__(num_samples, every, batch_size, seed)
        self.mode_radius = float(mode_radius)
        self._reference: Tensor | None = None
        self._labels: Tensor | None = None

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> dict[str, float]:
        if self._reference is None:
            self._reference, self._labels = held_out(trainer, "PointMetrics")
        reference = self._reference
        samples = self.draw(trainer, pl_module, generation, self.labels_to_ask(trainer, self._labels))
        values = {"frechet": frechet_distance(samples, reference), "mmd": mmd_rbf(samples, reference)}
        values["mean_drift"], values["cov_drift"] = moment_drift(samples, reference)
        centres = getattr(trainer.datamodule, "centres", None)  # type: ignore[attr-defined]
        if isinstance(centres, Tensor):
            values["mode_coverage"], values["mode_spread"] = mode_statistics(samples, centres, self.mode_radius)
        return {name: float(value) for name, value in values.items()}
