r"""Synthetic fractions that change over the generations: :math:`\lambda_t` instead of one
:math:`\lambda` (a web whose synthetic share grows over time).

The loop's ``synthetic_fraction`` may be

- a number: the same :math:`\lambda` every generation;
- a list of ``generations`` numbers: :math:`\lambda_1, \dots, \lambda_T`, the share sampled for
  generation :math:`t` (at the end of generation :math:`t-1`);
- a callable ``f(generation) -> float`` or its import path ``"package.module:function"``;
- a mapping ``{"name": ..., **settings}`` naming a registered schedule, e.g.
  ``{"name": "linear", "start": 0.1, "end": 1.0}`` (:func:`register_schedule`).

Every :math:`\lambda_t` is computed when the loop is made (and refused there if one is negative or
not finite), recorded with the run and compared on resume.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sclc_lightning._callables import resolve_callable
from sclc_lightning._checks import check_keys, is_number
from sclc_lightning._registry import Registry

__all__ = ["available_schedules", "register_schedule", "resolve_schedule"]

#: Registered schedules: ``f(generation, generations, **settings) -> float``.
_SCHEDULES: Registry[Any] = Registry("schedule", None, "synthetic_fraction", package="sclc_lightning.mixing")


def register_schedule(name: str) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Register ``f(generation, generations, **settings) -> float`` under ``name``.

    Examples:
        >>> @register_schedule("doc_half")
        ... def half(generation, generations):
        ...     return 0.5
        >>> resolve_schedule({"name": "doc_half"}, 2)
        (0.5, 0.5)
    """

    return _SCHEDULES.register(name)


def available_schedules() -> list[str]:
    """The registered schedule names."""
    return _SCHEDULES.names()


@register_schedule("linear")
def linear(generation: int, generations: int, start: float, end: float) -> float:
    r""":math:`\lambda_t` from ``start`` at generation 1 to ``end`` at the last, linearly.

    Examples:
        >>> [linear(t, 3, 0.0, 1.0) for t in (1, 2, 3)]
        [0.0, 0.5, 1.0]
    """
    if generations <= 1:
        return float(end)
    value = float(start) + (float(end) - float(start)) * (generation - 1) / (generations - 1)
    return round(value, 12)  # 0.8, not 0.7999999999999999: floor(λn) must not lose a point


def resolve_schedule(value: Any, generations: int) -> tuple[float, ...]:
    r""":math:`(\lambda_1, \dots, \lambda_T)` of a schedule (see the module's documentation).

    Raises:
        ValueError: a list of another length, an unknown name, or a value that is negative or
            not finite, naming the generation.

    Examples:
        >>> resolve_schedule([0.1, 0.2], 2)
        (0.1, 0.2)
        >>> resolve_schedule({"name": "linear", "start": 0.0, "end": 1.0}, 5)
        (0.0, 0.25, 0.5, 0.75, 1.0)
    """
    if isinstance(value, Mapping):
        values = _registered_values(value, generations)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = _listed_values(value, generations)
    else:
        values = _called_values(value, generations)
    for generation, fraction in enumerate(values, start=1):
        # NumPy scalars are numbers (np.float32(0.5) is a fraction like 0.5)
        if not is_number(fraction) or not 0 <= float(fraction) < math.inf:
            raise ValueError(
                f"`synthetic_fraction` at generation {generation} must be a finite number >= 0, got {fraction!r}."
            )
    return tuple(float(f) for f in values)


def _registered_values(value: Mapping[str, Any], generations: int) -> list[Any]:
    """The values of the registered schedule that ``value["name"]`` names, with the other keys
    of ``value`` as its settings (each a number; those without a default required)."""
    settings = {k: v for k, v in value.items() if k != "name"}
    name = value.get("name")
    if "name" not in value:
        raise ValueError(
            "`synthetic_fraction` as a mapping needs a 'name' (a registered schedule:"
            f" {available_schedules()}), got the keys {sorted(value)}."
        )
    if name not in _SCHEDULES:
        raise ValueError(f"`synthetic_fraction` names the schedule {name!r}; registered: {available_schedules()}.")
    function = _SCHEDULES.get(str(name))
    taken = [p for p in inspect.signature(function).parameters][2:]  # after (generation, generations)
    check_keys(f"synthetic_fraction ({name!r} schedule)", settings, taken)
    missing = sorted(set(taken) - set(settings) - _defaulted(function))
    if missing:
        raise ValueError(f"`synthetic_fraction`: the {name!r} schedule needs {missing}; it takes {taken}.")
    for key, setting in settings.items():
        if not is_number(setting):
            raise ValueError(
                f"`synthetic_fraction` ({name!r} schedule): `{key}` must be a number, got {setting!r}"
                + (" (text: write the number without quotes)." if isinstance(setting, str) else ".")
            )
    return [function(t, generations, **settings) for t in range(1, generations + 1)]


def _listed_values(value: Sequence[Any], generations: int) -> list[Any]:
    """The values of a list schedule, which must hold one per generation."""
    if len(value) != generations:
        raise ValueError(
            f"`synthetic_fraction` as a list needs one value per generation 1..{generations}"
            f" ({generations}), got {len(value)}."
        )
    return list(value)


def _called_values(value: Any, generations: int) -> list[Any]:
    """The values of a schedule given as a function ``f(generation)`` or its import path."""
    given = resolve_callable(value, "synthetic_fraction")
    assert given is not None
    try:
        inspect.signature(given).bind(1)
    except TypeError:
        raise ValueError(
            f"`synthetic_fraction` as a function is called as f(generation) -> float, with one argument;"
            f" {getattr(given, '__qualname__', given)!r} takes {inspect.signature(given)}."
        ) from None
    except ValueError:  # no signature to read (a builtin): call it
        pass
    return [given(t) for t in range(1, generations + 1)]


def _defaulted(function: Callable[..., float]) -> set[str]:
    return {
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
