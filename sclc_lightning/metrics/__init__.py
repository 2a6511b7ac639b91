"""Per-generation evaluation: point-cloud metrics; FID, KID, precision/recall, accuracy, diversity of images."""

from sclc_lightning.metrics.features import DomainClassifier, FeatureView, load_or_train_classifier
from sclc_lightning.metrics.functional import (
    feature_diversity,
    frechet_distance,
    mmd_rbf,
    mode_statistics,
    moment_drift,
)
from sclc_lightning.metrics.image_metrics import ImageMetrics
from sclc_lightning.metrics.motion_metrics import MotionMetrics
from sclc_lightning.metrics.point_metrics import PointMetrics

__all__ = [
    "DomainClassifier",
    "FeatureView",
    "ImageMetrics",
    "MotionMetrics",
    "PointMetrics",
    "feature_diversity",
    "frechet_distance",
    "load_or_train_classifier",
    "mmd_rbf",
    "mode_statistics",
    "moment_drift",
]
