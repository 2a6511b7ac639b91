"""sclc-lightning: self-consuming and self-correcting generative training loops for Lightning.

The public names below are imported when first used (PEP 562), so that ``import sclc_lightning``
and the ``sclc`` command's light subcommands (``grid``, ``report``) do not load Lightning, torch
and scikit-learn before they need them.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sclc_lightning.correctors import (
        CommandCorrector,
        Corrector,
        FilterCorrector,
        IdealMixtureCorrector,
        IdentityCorrector,
        KMeansCorrector,
        OptimalTransportCorrector,
        PhysicsCorrector,
        RandomPairingCorrector,
        available_correctors,
        register_corrector,
    )
    from sclc_lightning.data import (
        AccumulatePolicy,
        AugmentPolicy,
        FreshPolicy,
        GenerationPlan,
        MixingPolicy,
        RealData,
        ReplacePolicy,
        SyntheticBatch,
        available_mixing_policies,
        register_mixing_policy,
    )
    from sclc_lightning.loop import GenerationRecord, SelfConsumingLoop, SyntheticDataError

try:
    __version__ = version("sclc-lightning")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

#: Where each public name lives.
_EXPORTS = {
    **dict.fromkeys(
        (
            "CommandCorrector",
            "Corrector",
            "FilterCorrector",
            "IdealMixtureCorrector",
            "IdentityCorrector",
            "KMeansCorrector",
            "OptimalTransportCorrector",
            "PhysicsCorrector",
            "RandomPairingCorrector",
            "available_correctors",
            "register_corrector",
        ),
        "sclc_lightning.correctors",
    ),
    **dict.fromkeys(
        (
            "AccumulatePolicy",
            "AugmentPolicy",
            "FreshPolicy",
            "GenerationPlan",
            "MixingPolicy",
            "RealData",
            "ReplacePolicy",
            "SyntheticBatch",
            "available_mixing_policies",
            "register_mixing_policy",
        ),
        "sclc_lightning.data",
    ),
    **dict.fromkeys(("GenerationRecord", "SelfConsumingLoop", "SyntheticDataError"), "sclc_lightning.loop"),
}

__all__ = [
    "AccumulatePolicy",
    "AugmentPolicy",
    "CommandCorrector",
    "Corrector",
    "FilterCorrector",
    "FreshPolicy",
    "GenerationPlan",
    "GenerationRecord",
    "IdealMixtureCorrector",
    "IdentityCorrector",
    "KMeansCorrector",
    "MixingPolicy",
    "OptimalTransportCorrector",
    "PhysicsCorrector",
    "RandomPairingCorrector",
    "RealData",
    "ReplacePolicy",
    "SelfConsumingLoop",
    "SyntheticBatch",
    "SyntheticDataError",
    "__version__",
    "available_correctors",
    "available_mixing_policies",
    "register_corrector",
    "register_mixing_policy",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # imported once
        return value
    raise AttributeError(f"module 'sclc_lightning' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
