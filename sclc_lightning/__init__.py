"""sclc-lightning: self-consuming and self-correcting generative training loops for Lightning."""

from importlib.metadata import PackageNotFoundError, version

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
