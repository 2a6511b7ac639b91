"""The shared base of evaluators that compare generated samples with reference data in a feature
space: features of the reference computed once, FID on precomputed features, diversity and its
ratio to the reference's, and, for labelled samples, the classifier's accuracy on the requested
labels (beside its accuracy on the labelled reference, the ceiling a model can reach in its eyes)
and the diversity within each label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import lightning.pytorch as pl
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from sclc_lightning._checks import plain_numbers
from sclc_lightning._trainer import find_loop
from sclc_lightning.metrics.evaluator import GenerationEvaluator, Precomputed, conditions_for, extract
from sclc_lightning.metrics.functional import feature_diversity
from sclc_lightning.seeding import make_generator

__all__ = ["FeatureDistanceEvaluator", "FeatureSpace"]


@dataclass(frozen=True)
class FeatureSpace:
    """Where samples are compared with the reference.

    Attributes:
        encoder: samples ``(N, ...)`` to features ``(N, num_features)``.
        num_features: the width of the features.
        reference_features: the reference data's features.
        reference_labels: its labels (asked of conditional samples), or ``None``.
        head: features to class logits, for the accuracy on requested labels; ``None``: no
            accuracy.
    """

    encoder: nn.Module
    num_features: int
    reference_features: Tensor
    reference_labels: Tensor | None
    head: nn.Module | None


@plain_numbers
class FeatureDistanceEvaluator(GenerationEvaluator):
    """Logs ``fid``, ``diversity``, ``diversity_ratio`` and, for labelled samples,
    ``class_diversity``, the accuracy on the requested labels (:attr:`accuracy_key`) and the same
    classifier's accuracy on the labelled reference (``real_`` + :attr:`accuracy_key`).

    Subclasses build the :class:`FeatureSpace` once (:meth:`feature_space`) and may add their
    own metrics (:meth:`extra_metrics`).

    Examples:
        A subclass says where samples are compared (see :class:`FeatureSpace`) by overriding its
        feature-space method; :class:`~sclc_lightning.callbacks.ImageMetrics` and
        :class:`~sclc_lightning.callbacks.MotionMetrics` are two.

        >>> from sclc_lightning.callbacks import FeatureDistanceEvaluator, ImageMetrics
        >>> issubclass(ImageMetrics, FeatureDistanceEvaluator)
        True
    """

    headline = "fid"
    #: the name under which the classifier's accuracy on the requested labels is logged.
    accuracy_key: ClassVar[str] = "class_accuracy"

    _space: FeatureSpace | None = None

    def feature_space(self, trainer: pl.Trainer) -> FeatureSpace:
        """The encoder and the reference, built at the first evaluation."""
        raise NotImplementedError

    def requested_labels(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, reference_labels: Tensor | None
    ) -> Tensor | None:
        """The labels to ask of the samples (the reference labels, repeated), ``None`` for
        unconditional sampling: as the loop samples (:meth:`labels_to_ask`), or, without a
        loop, whenever the reference has labels."""
        if find_loop(trainer) is not None:
            return self.labels_to_ask(trainer, reference_labels)
        return None if reference_labels is None else conditions_for(reference_labels, self.num_samples)

    def extra_metrics(
        self, space: FeatureSpace, samples: Tensor, features: Tensor, generation: int
    ) -> dict[str, float]:
        """Metrics of a subclass's own, from the samples and their features."""
        return {}

    def _prepare(self, trainer: pl.Trainer) -> FeatureSpace:
        space = self.feature_space(trainer)
        # FID takes the features computed once, for the reference and the generated samples.
        self.fid = FrechetInceptionDistance(feature=Precomputed(space.num_features), reset_real_features=False)
        self.fid.update(space.reference_features, real=True)
        pairs = make_generator(self.draw_seed(trainer), "evaluate", 0, 2)
        self.real_diversity = float(feature_diversity(space.reference_features, generator=pairs))
        self.real_accuracy = float("nan")
        if space.head is not None and space.reference_labels is not None:
            predicted = extract(space.head, space.reference_features, self.batch_size).argmax(dim=1)
            self.real_accuracy = float((predicted == space.reference_labels).float().mean())
        self._space = space
        return space

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> dict[str, float]:
        space = self._space or self._prepare(trainer)
        labels = self.requested_labels(trainer, pl_module, space.reference_labels)
        samples = self.draw(trainer, pl_module, generation, labels).float()
        features = extract(space.encoder, samples, self.batch_size)
        self.fid.reset()
        self.fid.update(features, real=False)
        metrics = {"fid": float(self.fid.compute())}
        pairs = make_generator(self.draw_seed(trainer), "evaluate", generation, 1)
        metrics["diversity"] = float(feature_diversity(features, generator=pairs))
        metrics["diversity_ratio"] = metrics["diversity"] / self.real_diversity
        if labels is not None:
            metrics["class_diversity"] = float(feature_diversity(features, labels, generator=pairs))
            if space.head is not None:
                predicted = extract(space.head, features, self.batch_size).argmax(dim=1)
                metrics[self.accuracy_key] = float((predicted == labels).float().mean())
                metrics[f"real_{self.accuracy_key}"] = self.real_accuracy
        metrics.update(self.extra_metrics(space, samples, features, generation))
        return metrics
