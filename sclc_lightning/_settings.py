"""The settings of an extension-point object as JSON-safe values, read from its constructor's
arguments, for manifests, checkpoints and the comparison made on resume."""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from sclc_lightning._callables import code_identity

__all__ = ["constructor_arguments", "declared_settings", "jsonable"]


def jsonable(value: Any) -> Any:
    """``value`` as JSON-safe data that compares equal whenever the setting is the same.

    Numbers, strings, ``None`` and containers stay as they are (tuples become lists); callables
    become their code identity ``"module:qualname#code:<digest>"``
    (:func:`~sclc_lightning._callables.code_identity`: an edited function records another);
    paths become strings; tensors a digest of their values; other objects their class path, or
    their ``repr`` when the class defines one.
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
    # functions, methods, partials and callable objects without a repr of their own
    if callable(value) and (
        hasattr(value, "__qualname__")
        or isinstance(value, functools.partial)
        or type(value).__repr__ is object.__repr__
    ):
        return code_identity(value)
    cls = type(value)
    if cls.__repr__ is not object.__repr__:
        return repr(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def constructor_arguments(cls: type) -> list[str]:
    """The named arguments of ``cls.__init__`` (``self``, ``*args`` and ``**kwargs`` left out)."""
    return [
        name
        for name, parameter in inspect.signature(cls.__init__).parameters.items()  # type: ignore[misc]
        if name != "self" and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def declared_settings(
    obj: Any, deciding: Iterable[str] | None, operational: Iterable[str], exclude: Iterable[str] = ()
) -> dict[str, Any]:
    """The settings of ``obj`` that decide its results, as JSON-safe values, by its class's
    declaration: every constructor argument is either *deciding* (it changes what the object
    produces; recorded, and a resumed run must not change it) or *operational* (workers,
    timeouts; never recorded). ``deciding=None`` declares every argument that is not operational
    deciding. Each deciding argument is read from the attribute of the same name.

    Raises:
        TypeError: naming the class and the argument, when an argument is declared neither way,
            both ways, or is deciding but not kept as an attribute of its name (a setting that
            would silently leave the resume fingerprint).

    Examples:
        >>> class Smooth:
        ...     def __init__(self, width, workers=4):
        ...         self.width, self.workers = width, workers
        >>> declared_settings(Smooth(3), deciding=("width",), operational=("workers",))
        {'width': 3}
        >>> class Hidden:
        ...     def __init__(self, width):
        ...         self._width = width
        >>> try:
        ...     declared_settings(Hidden(3), deciding=None, operational=())
        ... except TypeError as err:
        ...     print(str(err)[:56])
        Hidden keeps its constructor argument 'width' under anot
    """
    cls = type(obj)
    arguments = [name for name in constructor_arguments(cls) if name not in set(exclude)]
    operational = tuple(operational)
    both = sorted(set(deciding or ()) & set(operational))
    if both:
        raise TypeError(f"{cls.__name__} declares {both} both deciding and operational; choose one.")
    if deciding is None:
        chosen = [name for name in arguments if name not in operational]
    else:
        deciding = tuple(deciding)
        unknown = sorted(set(deciding) - set(arguments))
        undeclared = [name for name in arguments if name not in deciding and name not in operational]
        if unknown:
            raise TypeError(f"{cls.__name__} declares deciding settings {unknown} that its constructor does not take.")
        if undeclared:
            raise TypeError(
                f"{cls.__name__}: constructor arguments {undeclared} are declared neither deciding nor operational;"
                " add each to `deciding` (it changes results) or `operational` (workers, timeouts)."
            )
        chosen = list(deciding)
    settings: dict[str, Any] = {}
    for name in chosen:
        if not hasattr(obj, name):
            raise TypeError(
                f"{cls.__name__} keeps its constructor argument {name!r} under another name, so it cannot be"
                " recorded with the run and a resume with another value would be accepted. Store it as"
                f" `self.{name}`, declare it operational (it does not change results), or override `settings()`."
            )
        settings[name] = jsonable(getattr(obj, name))
    return settings
