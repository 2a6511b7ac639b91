"""Per-generation evaluation: point-cloud metrics, and FID/KID/class accuracy for images."""

from sclc_lightning.metrics.features import DomainClassifier, FeatureView, load_or_train_classifier
from sclc_lightning.metrics.functional import frechet_distance, mode_statistics
from sclc_lightning.metrics.image_metrics import ImageMetrics
from sclc_lightning.metrics.point_metrics import PointMetrics

__all__ = [
    "DomainClassifier",
    "FeatureView",
    "ImageMetrics",
    "PointMetrics",
    "frechet_distance",
    "load_or_train_classifier",
    "mode_statistics",
]
