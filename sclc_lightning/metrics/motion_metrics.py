"""Per-generation evaluation of a motion model: feature FID, matching accuracy, diversity and
physics violations (Gillman et al. §6 report FID, Diversity and Matching Score)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
from torch import Tensor

from sclc_lightning._checks import COUNT, NON_NEGATIVE, bounded, check_arguments, plain_numbers
from sclc_lightning._extras import require
from sclc_lightning._trainer import find_loop
from sclc_lightning.metrics.classifier import load_or_train_classifier
from sclc_lightning.metrics.evaluator import extract, held_out
from sclc_lightning.metrics.feature_distance import FeatureDistanceEvaluator, FeatureSpace
from sclc_lightning.metrics.features import FeatureView

__all__ = ["MotionMetrics"]


@plain_numbers
class MotionMetrics(FeatureDistanceEvaluator):
    """After every ``every`` generations, sample ``num_samples`` motions (the held-out labels,
    repeated, as conditions; shared out over DDP ranks) and log:

    - ``fid``: Fréchet distance (torchmetrics' FID with a custom feature network) between the
      features of generated and held-out motions, in the features of a motion classifier
      trained once on the real training motions and cached;
    - ``matching_accuracy``: share of samples the classifier assigns to the requested label, and
      ``real_matching_accuracy``, its accuracy on the held-out motions (the ceiling)
      (the stand-in for the paper's matching score);
    - ``diversity`` (mean feature distance of random pairs), ``diversity_ratio`` (over the
      held-out motions' value) and ``class_diversity`` (within each label, averaged);
    - ``penetration``, ``floating``, ``skating``, ``joint_limit``: the mean physics violations
      of the samples (:func:`sclc_lightning.physics.physics_violations`), and the same for the
      held-out motions once, as ``real_*``, for reference;
    - ``time_evaluating_s``.

    Args:
        num_samples: motions generated per evaluation (keep it fixed: FID depends on it).
        every: evaluate every ``every`` generations.
        num_classes: motion labels.
        cache_dir: where the classifier is cached (default ``~/.cache/sclc_lightning``).
        classifier_epochs: training epochs of the classifier.
        batch_size: motions per ``sample`` call.
        physics_workers: worker processes for the physics checks (0: this process).
        seed: seed of the evaluation draws and of the feature classifier; `None` (default): the
            draws take the run's seed (the loop's) and the classifier seed 0 (the same instrument
            in every run, so that runs compare).

    Examples:
        >>> from sclc_lightning.callbacks import MotionMetrics
        >>> metrics = MotionMetrics(num_samples=256, every=2)
    """

    accuracy_key = "matching_accuracy"
    ranges = bounded(num_classes=COUNT, classifier_epochs=COUNT, physics_workers=NON_NEGATIVE)

    def __init__(
        self,
        num_samples: int = 256,
        every: int = 1,
        num_classes: int = 4,
        cache_dir: str | None = None,
        classifier_epochs: int = 30,
        batch_size: int = 256,
        physics_workers: int = 0,
        seed: int | None = None,
    ) -> None:
        check_arguments(MotionMetrics, locals())
        super().__init__(num_samples, every, batch_size, seed)
        self.num_classes = num_classes
        self.cache_dir = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "sclc_lightning"
        self.classifier_epochs, self.physics_workers = classifier_epochs, physics_workers
        require("mujoco", "physics", "MotionMetrics (physics checks in MuJoCo)")

    def feature_space(self, trainer: pl.Trainer) -> FeatureSpace:
        reference, labels = held_out(trainer, "MotionMetrics")
        if labels is None:
            raise ValueError("MotionMetrics needs labelled held-out motions (items `(motion, label)`).")
        loop = find_loop(trainer)
        if loop is None:
            raise ValueError("MotionMetrics needs the SelfConsumingLoop (its real data trains the classifier).")
        classifier, _ = load_or_train_classifier(
            loop.real_data.dataset,
            self.num_classes,
            self.cache_dir,
            self.classifier_epochs,
            self.classifier_seed,
            kind="motion",
        )
        encoder = FeatureView(classifier)
        reference = reference.float()
        features = extract(encoder, reference, self.batch_size)
        self.real_physics = {f"real_{k}": v for k, v in self._physics(reference).items()}
        return FeatureSpace(encoder, classifier.num_features, features, labels, classifier.head)

    def _physics(self, motions: Tensor) -> dict[str, float]:
        from sclc_lightning.physics import physics_violations

        values = physics_violations(motions.double().numpy(), num_workers=self.physics_workers)
        return {key: float(np.mean(v)) for key, v in values.items()}

    def extra_metrics(
        self, space: FeatureSpace, samples: Tensor, features: Tensor, generation: int
    ) -> dict[str, float]:
        return {**self._physics(samples), **self.real_physics}
