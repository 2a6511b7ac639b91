"""Correctors: the correction functions :math:`\\pi_\\gamma` applied to synthetic data.

Each built-in corrector is a module of this package whose class carries
``@register_corrector("name")``; the registry imports the package's modules the first time it is
asked for a name (:mod:`sclc_lightning._registry`), so nothing lists them elsewhere. The names
below are imported when first used (PEP 562): ``from sclc_lightning.correctors import
KMeansCorrector`` loads k-means, not the physics simulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sclc_lightning._lazy import lazy

if TYPE_CHECKING:
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

_exported, _listed = lazy(
    __name__,
    {
        **dict.fromkeys(
            (
                "Corrector",
                "ModuleCorrector",
                "available_correctors",
                "get_corrector_class",
                "make_corrector",
                "register_corrector",
            ),
            "sclc_lightning.correctors.base",
        ),
        **dict.fromkeys(("CommandCorrector", "CorrectorProcessError"), "sclc_lightning.correctors.command"),
        **dict.fromkeys(("FilterCorrector",), "sclc_lightning.correctors.filter"),
        **dict.fromkeys(("ForceFieldCorrector",), "sclc_lightning.correctors.forcefield"),
        **dict.fromkeys(("IdentityCorrector",), "sclc_lightning.correctors.identity"),
        **dict.fromkeys(("KMeansCorrector",), "sclc_lightning.correctors.kmeans"),
        **dict.fromkeys(
            (
                "ModelCorrector",
                "NeonCorrector",
                "available_model_correctors",
                "make_model_corrector",
                "register_model_corrector",
            ),
            "sclc_lightning.correctors.model",
        ),
        **dict.fromkeys(
            ("OptimalTransportCorrector", "RandomPairingCorrector", "min_distance_matching"),
            "sclc_lightning.correctors.ot",
        ),
        **dict.fromkeys(("PhysicsCorrector",), "sclc_lightning.correctors.physics"),
        **dict.fromkeys(("Score", "available_scores", "register_score"), "sclc_lightning.correctors.scores"),
        **dict.fromkeys(
            ("CurationCorrector", "OversamplingError", "SelectingCorrector", "VerifierCorrector"),
            "sclc_lightning.correctors.selection",
        ),
    },
)


def _builtin_classes() -> dict[str, type]:
    """The registered correctors and model correctors by class name."""
    import importlib

    base = importlib.import_module("sclc_lightning.correctors.base")
    model = importlib.import_module("sclc_lightning.correctors.model")
    classes = [base.get_corrector_class(name) for name in base.available_correctors()]
    classes += [model.get_model_corrector_class(name) for name in model.available_model_correctors()]
    return {cls.__name__: cls for cls in classes}


def __getattr__(name: str) -> Any:
    """A name of the map above, or the class of a registered corrector: a new built-in is
    exported by its registration alone."""
    try:
        return _exported(name)
    except AttributeError:
        found = _builtin_classes().get(name) if not name.startswith("_") else None
        if found is None:
            raise
        globals()[name] = found  # found once
        return found


def __dir__() -> list[str]:
    return sorted({*_listed(), *_builtin_classes()})
