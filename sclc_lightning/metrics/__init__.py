"""Per-generation evaluation: point-cloud metrics; FID, KID, precision/recall, accuracy, diversity of images;
scores on held-out data (ELBO, perplexity)."""

from sclc_lightning.metrics.classifier import (
    DomainClassifier,
    MotionClassifier,
    load_or_train_classifier,
    train_classifier,
)
from sclc_lightning.metrics.conformer_metrics import ConformerMetrics
from sclc_lightning.metrics.detector import DetectorMetrics, c2st_auc
from sclc_lightning.metrics.diversity import DiversityMetrics
from sclc_lightning.metrics.feature_distance import FeatureDistanceEvaluator, FeatureSpace
from sclc_lightning.metrics.features import FeatureView
from sclc_lightning.metrics.functional import (
    dispersion,
    feature_diversity,
    frechet_distance,
    min_mode_weight,
    mmd_rbf,
    mode_statistics,
    moment_drift,
    tail_mass,
)
from sclc_lightning.metrics.held_out import HeldOutScores
from sclc_lightning.metrics.image_metrics import ImageMetrics
from sclc_lightning.metrics.motion_metrics import MotionMetrics
from sclc_lightning.metrics.point_metrics import PointMetrics
from sclc_lightning.metrics.text_metrics import TextMetrics

__all__ = [
    "ConformerMetrics",
    "DetectorMetrics",
    "DiversityMetrics",
    "DomainClassifier",
    "FeatureDistanceEvaluator",
    "FeatureSpace",
    "FeatureView",
    "HeldOutScores",
    "ImageMetrics",
    "MotionClassifier",
    "MotionMetrics",
    "PointMetrics",
    "TextMetrics",
    "c2st_auc",
    "dispersion",
    "feature_diversity",
    "frechet_distance",
    "load_or_train_classifier",
    "min_mode_weight",
    "mmd_rbf",
    "mode_statistics",
    "moment_drift",
    "tail_mass",
    "train_classifier",
]
