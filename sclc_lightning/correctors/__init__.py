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
from sclc_lightning.correctors.identity import IdentityCorrector
from sclc_lightning.correctors.kmeans import KMeansCorrector
from sclc_lightning.correctors.mixture import IdealMixtureCorrector
from sclc_lightning.correctors.ot import OptimalTransportCorrector, RandomPairingCorrector, min_distance_matching
from sclc_lightning.correctors.physics import PhysicsCorrector

__all__ = [
    "CommandCorrector",
    "Corrector",
    "CorrectorProcessError",
    "FilterCorrector",
    "IdealMixtureCorrector",
    "IdentityCorrector",
    "KMeansCorrector",
    "ModuleCorrector",
    "OptimalTransportCorrector",
    "PhysicsCorrector",
    "RandomPairingCorrector",
    "available_correctors",
    "get_corrector_class",
    "make_corrector",
    "min_distance_matching",
    "register_corrector",
]
