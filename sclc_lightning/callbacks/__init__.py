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
    from sclc_lightning.callbacks.stability import StabilityMonitor
    from sclc_lightning.loop import SelfConsumingLoop
    from sclc_lightning.metrics import (
        ConformerMetrics,
        DetectorMetrics,
        DiversityMetrics,
        FeatureDistanceEvaluator,
        HeldOutScores,
        ImageMetrics,
        MotionMetrics,
        PointMetrics,
        TextMetrics,
    )
    from sclc_lightning.metrics.evaluator import GenerationEvaluator

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
        "StabilityMonitor": "sclc_lightning.callbacks.stability",
        "GenerationEvaluator": "sclc_lightning.metrics.evaluator",
        **dict.fromkeys(
            (
                "ConformerMetrics",
                "DetectorMetrics",
                "DiversityMetrics",
                "FeatureDistanceEvaluator",
                "HeldOutScores",
                "ImageMetrics",
                "MotionMetrics",
                "PointMetrics",
                "TextMetrics",
            ),
            "sclc_lightning.metrics",
        ),
    },
)
