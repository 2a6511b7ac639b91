"""Checks of plain arguments, with the messages the house style asks for: the argument, what it
must be and the value given. Numbers may be Python or NumPy scalars (``np.float32(0.5)`` is a
number); text is never a number (``"1e-3"`` is refused, naming the fix)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["check_keys", "check_number", "is_integer", "is_number"]


def is_number(value: Any) -> bool:
    """A real number that is not a bool (NumPy scalars included)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    """An integer that is not a bool (NumPy integers included)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    integer: bool = False,
) -> Any:
    """``value`` as a Python ``float`` (``int`` with ``integer``), refused unless it is a finite
    number in range.

    Raises:
        ValueError: "`name` must be a finite number >= 0, got ...", saying so when text was given.

    Examples:
        >>> import numpy as np
        >>> check_number("strength", np.float32(0.5), minimum=0)
        0.5
        >>> try:
        ...     check_number("lr", "1e-3", above=0)
        ... except ValueError as err:
        ...     print(err)
        `lr` must be a finite number > 0, got '1e-3' (text: write the number without quotes).
    """
    kind = "an integer" if integer else "a finite number"
    bounds = [f">= {minimum:g}" if minimum is not None else "", f"> {above:g}" if above is not None else ""]
    bounds.append(f"<= {maximum:g}" if maximum is not None else "")
    expected = " and ".join(b for b in bounds if b)
    wanted = f"`{name}` must be {kind}{' ' + expected if expected else ''}"
    ok = is_integer(value) if integer else is_number(value) and math.isfinite(float(value))
    if ok:
        number = int(value) if integer else float(value)
        ok = (
            (minimum is None or number >= minimum)
            and (above is None or number > above)
            and (maximum is None or number <= maximum)
        )
        if ok:
            return number
    hint = " (text: write the number without quotes)" if isinstance(value, str) else ""
    raise ValueError(f"{wanted}, got {value!r}{hint}.")


def check_keys(name: str, given: Mapping[str, Any], valid: Iterable[str]) -> None:
    """Refuse keys of ``given`` that are not in ``valid``, naming the valid ones and the nearest.

    Raises:
        ValueError: "`name` has unknown key 'timout' (did you mean 'timeout'?); valid keys: ...".

    Examples:
        >>> try:
        ...     check_keys("reward", {"command": "x", "timout": 3}, ["command", "timeout", "env"])
        ... except ValueError as err:
        ...     print(err)
        `reward` has unknown key 'timout' (did you mean 'timeout'?); valid keys: ['command', 'env', 'timeout'].
    """
    import difflib

    valid = sorted(valid)
    unknown = [k for k in given if k not in valid]
    if not unknown:
        return
    parts = []
    for key in unknown:
        near = difflib.get_close_matches(str(key), valid, n=1)
        parts.append(f"{key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    plural = "s" if len(unknown) > 1 else ""
    raise ValueError(f"`{name}` has unknown key{plural} {', '.join(parts)}; valid keys: {valid}.")
