"""Per-generation evaluation of point-cloud models (the image metrics come with the evaluation issue)."""

from sclc_lightning.metrics.functional import frechet_distance, mode_statistics
from sclc_lightning.metrics.point_metrics import PointMetrics

__all__ = ["PointMetrics", "frechet_distance", "mode_statistics"]
