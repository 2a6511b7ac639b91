"""sclc-lightning: self-consuming and self-correcting generative training loops for Lightning.

The package root exports what a user imports: the loop and the callbacks that go with it, and
the two extension points (correctors and mixing policies) with the types they receive. The
rest lives in packages named after their jobs:

| package | its job |
|---|---|
| `sclc_lightning.loop` | the callback's parts: settings, run, session, production, loader |
| `sclc_lightning.callbacks` | every callback a user adds to a Trainer |
| `sclc_lightning.correctors` | the correctors and their registry |
| `sclc_lightning.mixing` | mixing policies, the mixed dataset, the training budget |
| `sclc_lightning.items` | the item structure, its encoding, the field contract, real data |
| `sclc_lightning.store` | the run directory: shards, manifest, verification, lock |
| `sclc_lightning.datasets` | the bundled offline datasets |
| `sclc_lightning.metrics` | per-generation metrics |
| `sclc_lightning.models` | reference models |
| `sclc_lightning.seeding` | every seed of a run, derived from `(seed, purpose, generation, rank)` |

The names below are imported when first used (PEP 562), so that ``import sclc_lightning``
and the ``sclc`` command's light subcommands (``grid``, ``report``) do not load Lightning, torch
and scikit-learn before they need them.

Examples:
    >>> import sclc_lightning
    >>> sorted(set(sclc_lightning.__all__) - set(dir(sclc_lightning)))
    []
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from sclc_lightning._lazy import lazy

if TYPE_CHECKING:
    from sclc_lightning.callbacks.figures import SampleFigures
    from sclc_lightning.callbacks.generation_csv import GenerationCSV
    from sclc_lightning.correctors import Corrector, available_correctors, register_corrector
    from sclc_lightning.items import RealData, SyntheticBatch
    from sclc_lightning.loop import GenerationRecord, SelfConsumingLoop, SyntheticDataError
    from sclc_lightning.metrics.evaluator import GenerationEvaluator
    from sclc_lightning.mixing import GenerationPlan, MixingPolicy, available_mixing_policies, register_mixing_policy

try:
    __version__ = version("sclc-lightning")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "Corrector",
    "GenerationCSV",
    "GenerationEvaluator",
    "GenerationPlan",
    "GenerationRecord",
    "MixingPolicy",
    "RealData",
    "SampleFigures",
    "SelfConsumingLoop",
    "SyntheticBatch",
    "SyntheticDataError",
    "__version__",
    "available_correctors",
    "available_mixing_policies",
    "register_corrector",
    "register_mixing_policy",
]

__getattr__, __dir__ = lazy(
    __name__,
    {
        **dict.fromkeys(("GenerationRecord", "SelfConsumingLoop", "SyntheticDataError"), "sclc_lightning.loop"),
        **dict.fromkeys(("Corrector", "available_correctors", "register_corrector"), "sclc_lightning.correctors"),
        **dict.fromkeys(
            ("GenerationPlan", "MixingPolicy", "available_mixing_policies", "register_mixing_policy"),
            "sclc_lightning.mixing",
        ),
        **dict.fromkeys(("RealData", "SyntheticBatch"), "sclc_lightning.items"),
        "GenerationCSV": "sclc_lightning.callbacks.generation_csv",
        "SampleFigures": "sclc_lightning.callbacks.figures",
        "GenerationEvaluator": "sclc_lightning.metrics.evaluator",
    },
)
