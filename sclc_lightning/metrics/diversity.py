"""A callback that follows the diversity of a model's samples: their spread against generation
0's, the mass left in the real data's tails and the weight of the smallest mode."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from torch import Tensor
from typing_extensions import override

from sclc_lightning._checks import plain_numbers
from sclc_lightning.metrics.evaluator import GenerationEvaluator, held_out
from sclc_lightning.metrics.functional import dispersion, mode_weights, tail_mass

__all__ = ["DiversityMetrics"]


@plain_numbers
class DiversityMetrics(GenerationEvaluator):
    r"""Sample ``num_samples`` points after each generation and log how diverse they are.

    - ``dispersion``: the trace of the samples' covariance; ``dispersion_ratio``: over the
      first generation evaluated (generation 0), the statistic of Qiao et al. (2026);
    - ``tail_mass``: the share of samples beyond the held-out real data's 1st and 99th
      percentiles, per dimension (0.02 for samples of the real distribution; tails vanish first,
      Shumailov et al. 2024);
    - ``min_mode_weight``: for DataModules with mode ``centres`` (eight Gaussians), the smallest
      share of samples nearest to one mode (1/8 when balanced, 0 when a mode is lost), and
      ``max_mode_weight``, the largest (1 when every sample is in one mode).

    Generation 0's dispersion is kept in the checkpoint, so a resumed run divides by the same.

    Args:
        num_samples: points sampled per evaluation.
        every: evaluate every ``every`` generations (and always at generation 0).
        batch_size: points per ``sample`` call.
        seed: seed of the evaluation draws; `None` (default) takes the run's seed (the loop's).

    Examples:
        >>> from sclc_lightning.callbacks import DiversityMetrics
        >>> metrics = DiversityMetrics(num_samples=2000)
    """

    headline = "dispersion_ratio"

    def __init__(
        self, num_samples: int = 2000, every: int = 1, batch_size: int = 10_000, seed: int | None = None
    ) -> None:
        super().__init__(num_samples, every, batch_size, seed)
        self._reference: Tensor | None = None
        self._labels: Tensor | None = None
        self.first_dispersion: float | None = None

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> dict[str, float]:
        if self._reference is None:
            self._reference, self._labels = held_out(trainer, "DiversityMetrics")
        samples = self.draw(trainer, pl_module, generation, self.labels_to_ask(trainer, self._labels))
        spread = float(dispersion(samples))
        if self.first_dispersion is None:
            self.first_dispersion = spread
        values = {
            "dispersion": spread,
            "dispersion_ratio": spread / self.first_dispersion if self.first_dispersion > 0 else float("nan"),
            "tail_mass": float(tail_mass(samples, self._reference)),
        }
        centres = getattr(trainer.datamodule, "centres", None)  # type: ignore[attr-defined]
        if isinstance(centres, Tensor):
            weights = mode_weights(samples, centres)
            values["min_mode_weight"], values["max_mode_weight"] = float(weights.min()), float(weights.max())
        return values

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"first_dispersion": self.first_dispersion}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.first_dispersion = state_dict.get("first_dispersion")
