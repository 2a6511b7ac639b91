"""The sampling settings the bundled models share (the loop's ``sample_kwargs``)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_temperature"]


def check_temperature(temperature: Any, owner: str) -> float:
    """``temperature`` as a float, if it is a finite number > 0.

    Raises:
        ValueError: naming ``owner`` (the model) and the value.

    Examples:
        >>> check_temperature(0.9, "GaussianModel")
        0.9
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < math.inf:
        raise ValueError(f"{owner}.sample: `temperature` must be a finite number > 0, got {temperature!r}.")
    return float(temperature)
