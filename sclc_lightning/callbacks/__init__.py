"""Every callback a user adds to a ``Trainer``, in one place.

| callback | what it does |
|---|---|
| `SelfConsumingLoop` | the loop itself: sample, correct, mix, train on |
| `GenerationCSV` | `metrics.csv`, one row per generation |
| `SampleFigures` | a picture of each generation's samples |
| `GenerationEvaluator` | the base of per-generation metrics (subclass it) |
| `PointMetrics` | Fréchet distance, MMD, moment drift of points |
| `DiversityMetrics` | dispersion ratio, tail mass, smallest mode weight of samples |
| `DetectorMetrics` | a classifier two-sample test: can real and synthetic be told apart (AUC) |
| `StabilityMonitor` | where the run stands against the theory, live; warns when it leaves the band |
| `ImageMetrics` | FID, KID, precision/recall of images |
| `FeatureDistanceEvaluator` | Fréchet distance in a feature space of your choice |
| `HeldOutScores` | the model's scores of held-out items (ELBO, perplexity) |
| `TextMetrics` | distinct n-grams, true likelihood of generated text |
| `MotionMetrics` | FID, matching accuracy, physics violations of motions |
| `ConformerMetrics` | COV-R, MAT-R, sane bonds of molecular conformers |
| `RemoteSync` | publishes the run directory to object storage (`s3://…`) as the fit goes |

The names are imported when first used, so ``from sclc_lightning.callbacks import GenerationCSV``
loads only what that callback needs.

Examples:
    >>> from sclc_lightning.callbacks import GenerationCSV, SelfConsumingLoop
    >>> callbacks = [SelfConsumingLoop(synthetic_fraction=1.0, generations=3), GenerationCSV()]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sclc_lightning._lazy import lazy

if TYPE_CHECKING:
    from sclc_lightning.callbacks.figures import SampleFigures
    from sclc_lightning.callbacks.generation_csv import GenerationCSV
    from sclc_lightning.callbacks.remote import RemoteSync
    from sclc_lightning.callbacks.stability import StabilityMonitor
    from sclc_lightning.loop import SelfConsumingLoop
    from sclc_lightning.metrics.conformer_metrics import ConformerMetrics
    from sclc_lightning.metrics.detector import DetectorMetrics
    from sclc_lightning.metrics.diversity import DiversityMetrics
    from sclc_lightning.metrics.evaluator import GenerationEvaluator
    from sclc_lightning.metrics.feature_distance import FeatureDistanceEvaluator
    from sclc_lightning.metrics.held_out import HeldOutScores
    from sclc_lightning.metrics.image_metrics import ImageMetrics
    from sclc_lightning.metrics.motion_metrics import MotionMetrics
    from sclc_lightning.metrics.point_metrics import PointMetrics
    from sclc_lightning.metrics.text_metrics import TextMetrics

__all__ = [
    "ConformerMetrics",
    "DetectorMetrics",
    "DiversityMetrics",
    "FeatureDistanceEvaluator",
    "GenerationCSV",
    "GenerationEvaluator",
    "HeldOutScores",
    "ImageMetrics",
    "MotionMetrics",
    "PointMetrics",
    "RemoteSync",
    "SampleFigures",
    "SelfConsumingLoop",
    "StabilityMonitor",
    "TextMetrics",
]

__getattr__, __dir__ = lazy(
    __name__,
    {
        "SelfConsumingLoop": "sclc_lightning.loop",
        "GenerationCSV": "sclc_lightning.callbacks.generation_csv",
        "SampleFigures": "sclc_lightning.callbacks.figures",
        "RemoteSync": "sclc_lightning.callbacks.remote",
        "StabilityMonitor": "sclc_lightning.callbacks.stability",
        "GenerationEvaluator": "sclc_lightning.metrics.evaluator",
        "ConformerMetrics": "sclc_lightning.metrics.conformer_metrics",
        "DetectorMetrics": "sclc_lightning.metrics.detector",
        "DiversityMetrics": "sclc_lightning.metrics.diversity",
        "FeatureDistanceEvaluator": "sclc_lightning.metrics.feature_distance",
        "HeldOutScores": "sclc_lightning.metrics.held_out",
        "ImageMetrics": "sclc_lightning.metrics.image_metrics",
        "MotionMetrics": "sclc_lightning.metrics.motion_metrics",
        "PointMetrics": "sclc_lightning.metrics.point_metrics",
        "TextMetrics": "sclc_lightning.metrics.text_metrics",
    },
)
