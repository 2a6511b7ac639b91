"""Resolve user callables given in YAML as ``"package.module:function"`` strings."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["resolve_callable"]


def resolve_callable(value: Callable[..., Any] | str | None, argument: str) -> Callable[..., Any] | None:
    """Return ``value`` if callable, import it if it is a ``"module:attr"`` or ``"module.attr"`` string.

    Raises:
        ValueError: the string does not name an importable callable.
    """
    if value is None or callable(value):
        return value
    if not isinstance(value, str):
        raise TypeError(f"`{argument}` must be a callable or an import path string, got {value!r}.")
    module_name, sep, attr = value.partition(":")
    if not sep:
        module_name, _, attr = value.rpartition(".")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"`{argument}` {value!r} does not name an importable object: {err}") from err
    if not callable(target):
        raise ValueError(f"`{argument}` {value!r} is not callable.")
    return target  # type: ignore[no-any-return]
