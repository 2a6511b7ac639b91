"""The settings of an extension-point object as JSON-safe values, read from its constructor's
arguments, for manifests, checkpoints and the comparison made on resume."""

from __future__ import annotations

import hashlib
import inspect
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import torch

__all__ = ["init_settings", "jsonable"]


def jsonable(value: Any) -> Any:
    """``value`` as JSON-safe data that compares equal whenever the setting is the same.

    Numbers, strings, ``None`` and containers stay as they are (tuples become lists); callables
    become their import path ``"module:qualname"``; paths become strings; tensors a digest of
    their values; other objects their class path, or their ``repr`` when the class defines one.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) or math.isinf(value) else "nan"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        digest = hashlib.sha256(value.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
        return f"tensor{tuple(value.shape)}:{str(value.dtype).removeprefix('torch.')}:{digest}"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}:{value.__qualname__}"
    cls = type(value)
    if cls.__repr__ is not object.__repr__:
        return repr(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def init_settings(obj: Any, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The constructor arguments of ``obj`` that it keeps as attributes of the same name.

    Arguments stored under another name are not seen: such classes override the method that
    calls this (``settings()``) to list them.
    """
    skipped = {"self", *exclude}
    settings: dict[str, Any] = {}
    for name, parameter in inspect.signature(type(obj).__init__).parameters.items():
        if name in skipped or parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if hasattr(obj, name):
            settings[name] = jsonable(getattr(obj, name))
    return settings
