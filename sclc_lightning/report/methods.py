r"""What a run's correction method is, read from its loop settings: whether its corrector uses
its strength :math:`\gamma`, the :math:`\gamma` it ran with, whether it selects samples rather
than moving them, and the method as a person names it in a figure's legend (``"no correction"``,
``"kmeans, γ = 1"``, ``"curate, γ = ∞ (keeps only what it selects)"``).

The loop settings are those of :attr:`Run.loop <sclc_lightning.report.runs.Run.loop>`:
``corrector`` (a registered name, ``None``, or a class path mapping) and ``corrector_kwargs``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["applies_strength", "method_label", "number_label", "selects", "strength"]


def applies_strength(corrector: Any) -> bool:
    """Whether a corrector (a registered name; other forms are assumed to) uses its strength:
    the identity does not (γ = 0 whatever ``strength`` says).

    Examples:
        >>> applies_strength("identity"), applies_strength("kmeans"), applies_strength(None)
        (False, True, True)
    """
    if not isinstance(corrector, str) or corrector == "none":
        return True
    from sclc_lightning.correctors import get_corrector_class

    try:
        return bool(get_corrector_class(corrector).applies_strength)
    except (ValueError, KeyError):
        return True


def strength(loop: Mapping[str, Any]) -> float | None:
    """γ of a run's loop settings: ``0`` without a corrector (or with one that ignores its
    strength), the configured strength, else the registered corrector's default (``None`` for a
    corrector given as a class path).

    Examples:
        >>> strength({"corrector": "kmeans", "corrector_kwargs": {"strength": 2}}), strength({})
        (2.0, 0.0)
        >>> strength({"corrector": "identity", "corrector_kwargs": {"strength": 1}}), strength({"corrector": "none"})
        (0.0, 0.0)
        >>> strength({"corrector": "curate"})  # its default: keep only what it selects
        inf
    """
    corrector = loop.get("corrector")
    if corrector in (None, "none") or not applies_strength(corrector):
        return 0.0
    value = (loop.get("corrector_kwargs") or {}).get("strength")
    if value is None and isinstance(corrector, str):
        from sclc_lightning.correctors import get_corrector_class

        try:
            value = inspect.signature(get_corrector_class(corrector)).parameters["strength"].default
        except (ValueError, KeyError):
            return None
    return float(value) if isinstance(value, (int, float)) else None


def selects(corrector: Any) -> bool:
    """Whether ``corrector`` (a registered name) keeps some samples rather than correcting them
    (curation, verification).

    Examples:
        >>> selects("curate"), selects("optimal_transport"), selects(None)
        (True, False, False)
    """
    if not isinstance(corrector, str):
        return False
    from sclc_lightning.correctors import SelectingCorrector, available_correctors, get_corrector_class

    return corrector in available_correctors() and issubclass(get_corrector_class(corrector), SelectingCorrector)


def number_label(value: Any) -> str:
    """A setting's number as a paper prints it: ``1`` for ``1.0``, ``∞`` for infinity; anything
    else (a schedule's description) as it is.

    Examples:
        >>> number_label(1.0), number_label(0.25), number_label(float("inf")), number_label("linear")
        ('1', '0.25', '∞', 'linear')
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:g}"


def method_label(loop: Mapping[str, Any]) -> str:
    """The correction method of a run's loop settings as a person names it: the corrector and its
    γ, and the weight-space corrector that follows it if any.

    Examples:
        >>> method_label({})
        'no correction'
        >>> method_label({"corrector": "kmeans", "corrector_kwargs": {"strength": 1.0}})
        'kmeans, γ = 1'
        >>> method_label({"corrector": "curate"})
        'curate, γ = ∞ (keeps only what it selects)'
        >>> method_label({"corrector": "identity", "model_corrector": {"name": "neon", "w": -1.0}})
        'identity (no correction), then neon on the weights'
    """
    label = _corrector_label(loop)
    model_corrector = loop.get("model_corrector")
    if isinstance(model_corrector, Mapping):  # as recorded: its name and settings
        model_corrector = model_corrector.get("name", "a model corrector")
    if isinstance(model_corrector, str):
        label += f", then {model_corrector} on the weights"
    return label


def _corrector_label(loop: Mapping[str, Any]) -> str:
    corrector = loop.get("corrector")
    if isinstance(corrector, Mapping):  # a class path (config.yaml): its class's name
        corrector = str(corrector.get("class_path", "custom")).rsplit(".", 1)[-1]
    if corrector in (None, "none"):
        return "no correction"
    if not applies_strength(corrector):
        return f"{corrector} (no correction)"
    gamma = strength({**loop, "corrector": corrector})
    if gamma is None:
        return str(corrector)
    label = f"{corrector}, γ = {number_label(gamma)}"
    if math.isinf(gamma) and selects(corrector):
        label += " (keeps only what it selects)"
    return label
