"""Metrics: the functions that measure a generation (Fréchet distance, MMD, moments, diversity,
a classifier two-sample test) and the feature spaces and classifiers they measure in.

The per-generation evaluation callbacks built on them (``PointMetrics``, ``ImageMetrics``, …) are
imported from :mod:`sclc_lightning.callbacks`, the one home of every callback. The names below
are imported when first used (PEP 562): ``from sclc_lightning.metrics import frechet_distance``
loads no image model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sclc_lightning._lazy import lazy

if TYPE_CHECKING:
    from sclc_lightning.metrics.classifier import (
        DomainClassifier,
        MotionClassifier,
        load_or_train_classifier,
        train_classifier,
    )
    from sclc_lightning.metrics.detector import c2st_auc
    from sclc_lightning.metrics.feature_distance import FeatureSpace
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

__all__ = [
    "DomainClassifier",
    "FeatureSpace",
    "FeatureView",
    "MotionClassifier",
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

_exported, __dir__ = lazy(
    __name__,
    {
        **dict.fromkeys(
            ("DomainClassifier", "MotionClassifier", "load_or_train_classifier", "train_classifier"),
            "sclc_lightning.metrics.classifier",
        ),
        **dict.fromkeys(("c2st_auc",), "sclc_lightning.metrics.detector"),
        **dict.fromkeys(("FeatureSpace",), "sclc_lightning.metrics.feature_distance"),
        **dict.fromkeys(("FeatureView",), "sclc_lightning.metrics.features"),
        **dict.fromkeys(
            (
                "dispersion",
                "feature_diversity",
                "frechet_distance",
                "min_mode_weight",
                "mmd_rbf",
                "mode_statistics",
                "moment_drift",
                "tail_mass",
            ),
            "sclc_lightning.metrics.functional",
        ),
    },
)

#: The per-generation callbacks, whose one public home is :mod:`sclc_lightning.callbacks`.
_CALLBACKS = (
    "ConformerMetrics",
    "DetectorMetrics",
    "DiversityMetrics",
    "FeatureDistanceEvaluator",
    "HeldOutScores",
    "ImageMetrics",
    "MotionMetrics",
    "PointMetrics",
    "TextMetrics",
)


def __getattr__(name: str) -> Any:
    if name in _CALLBACKS:
        raise AttributeError(
            f"module 'sclc_lightning.metrics' has no attribute {name!r}: callbacks are imported from"
            f" sclc_lightning.callbacks (`from sclc_lightning.callbacks import {name}`)."
        )
    return _exported(name)
