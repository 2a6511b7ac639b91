"""Correctors: the correction functions :math:`\\pi_\\gamma` applied to synthetic data."""

from sclc_lightning.correctors.base import (
    Corrector,
    ModuleCorrector,
    available_correctors,
    get_corrector_class,
    make_corrector,
    register_corrector,
)
from sclc_lightning.correctors.command import CommandCorrector, CorrectorProcessError
from sclc_lightning.correctors.filter import FilterCorrector
from sclc_lightning.correctors.forcefield import ForceFieldCorrector
from sclc_lightning.correctors.identity import IdentityCorrector
from sclc_lightning.correctors.kmeans import KMeansCorrector
from sclc_lightning.correctors.mixture import IdealMixtureCorrector
from sclc_lightning.correctors.model import (
    ModelCorrector,
    NeonCorrector,
    available_model_correctors,
    make_model_corrector,
    register_model_corrector,
)
from sclc_lightning.correctors.ot import OptimalTransportCorrector, RandomPairingCorrector, min_distance_matching
from sclc_lightning.correctors.physics import PhysicsCorrector
from sclc_lightning.correctors.scores import Score, available_scores, register_score
from sclc_lightning.correctors.selection import (
    CurationCorrector,
    OversamplingError,
    SelectingCorrector,
    VerifierCorrector,
)

__all__ = [
    "CommandCorrector",
    "Corrector",
    "CorrectorProcessError",
    "CurationCorrector",
    "FilterCorrector",
    "ForceFieldCorrector",
    "IdealMixtureCorrector",
    "IdentityCorrector",
    "KMeansCorrector",
    "ModelCorrector",
    "ModuleCorrector",
    "NeonCorrector",
    "OptimalTransportCorrector",
    "OversamplingError",
    "PhysicsCorrector",
    "RandomPairingCorrector",
    "Score",
    "SelectingCorrector",
    "VerifierCorrector",
    "available_correctors",
    "available_model_correctors",
    "available_scores",
    "get_corrector_class",
    "make_corrector",
    "make_model_corrector",
    "min_distance_matching",
    "register_corrector",
    "register_model_corrector",
    "register_score",
]
