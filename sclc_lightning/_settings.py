"""The settings of an extension-point object as JSON-safe values, read from its constructor's
arguments, for manifests, checkpoints and the comparison made on resume; and each setting's
declaration (:func:`setting_rows`: default, role, range, documentation), read from the class, for
the docs' settings tables."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from sclc_lightning._callables import code_identity
from sclc_lightning._checks import declared_ranges

__all__ = [
    "SettingRow",
    "constructor_arguments",
    "declared_settings",
    "docstring_arguments",
    "first_sentence",
    "jsonable",
    "setting_rows",
]


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


@dataclasses.dataclass(frozen=True)
class SettingRow:
    """One constructor argument of a class, as the class declares it.

    Attributes:
        name: the argument's name.
        annotation: its type, as written in the signature.
        default: its default (``inspect.Parameter.empty``: required).
        role: ``"deciding"``, ``"operational"``, a role the caller fixes (``strength``: ``"γ"``),
            or ``None`` when the class declares it neither way or has no roles (a callback, which
            does not change the synthetic data).
        range: where a number must lie (``">= 1"``, ``"(0, 1]"``; ``""``: no range declared).
        doc: the first sentence of its entry in the class's ``Args:`` (``""``: none).
    """

    name: str
    annotation: str
    default: Any
    role: str | None
    range: str
    doc: str


def _args_section(doc: str | None) -> dict[str, str]:
    """The entries of a Google-style ``Args:`` section, each joined into one line."""
    lines = inspect.cleandoc(doc or "").splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Args:"), None)
    if start is None:
        return {}
    indent = len(lines[start]) - len(lines[start].lstrip())
    body = [line for line in lines[start + 1 :] if line.strip()]
    entry_depth = len(body[0]) - len(body[0].lstrip()) if body else 0
    entries: dict[str, str] = {}
    name = None
    for line in body:
        depth = len(line) - len(line.lstrip())
        if depth <= indent:
            break
        entry = re.match(r"(\w+)(?: \(.*?\))?: (.*)", line.strip())
        if entry and depth == entry_depth:
            name = entry.group(1)
            entries[name] = entry.group(2)
        elif name is not None:
            entries[name] += " " + line.strip()
    return entries


def docstring_arguments(cls: type) -> dict[str, str]:
    """Each argument's entry in the ``Args:`` section of ``cls``'s docstring, or of the nearest
    base that documents it (``strength``, documented once by the base class).

    Examples:
        >>> class Smooth:
        ...     \"""Smooth the points.
        ...
        ...     Args:
        ...         width: the kernel's width, in points. Odd widths
        ...             centre it.
        ...         workers: processes.
        ...     \"""
        >>> docstring_arguments(Smooth)["width"]
        "the kernel's width, in points. Odd widths centre it."
    """
    found: dict[str, str] = {}
    for klass in cls.__mro__:
        for name, text in _args_section(vars(klass).get("__doc__")).items():
            found.setdefault(name, text)
    return found


def first_sentence(text: str) -> str:
    """``text`` up to its first full stop that ends a sentence ("e.g." does not).

    Examples:
        >>> first_sentence("the width, e.g. 3. Odd widths centre it.")
        'the width, e.g. 3.'
    """
    match = re.search(r"(?<!\be\.g)(?<!\bi\.e)(?<!\bet al)\.(\s|$)", text)
    return text if match is None else text[: match.start() + 1]


def _role(cls: type, name: str, fixed: Mapping[str, str]) -> str | None:
    if name in fixed:
        return fixed[name]
    operational = tuple(getattr(cls, "operational", ()))
    deciding = getattr(cls, "deciding", None)
    if name in operational:
        return "operational"
    return "deciding" if deciding is None or name in deciding else None


def setting_rows(cls: type, fixed_roles: Mapping[str, str] | None = None, roles: bool = True) -> list[SettingRow]:
    """One :class:`SettingRow` per constructor argument of ``cls``, in the signature's order: the
    default and the type from the signature, the role from the class's ``deciding`` and
    ``operational`` (``fixed_roles`` name others, e.g. ``{"strength": "γ"}``; ``roles=False``: no
    role, for a class whose settings have none, such as a callback), the range from its
    ``ranges`` (:func:`~sclc_lightning._checks.declared_ranges`) and the first sentence of its
    docstring's entry (:func:`docstring_arguments`).

    Examples:
        >>> from sclc_lightning.correctors.kmeans import KMeansCorrector
        >>> row = setting_rows(KMeansCorrector, {"strength": "γ"})[1]
        >>> row.name, row.default, row.role, row.range, row.doc
        ('num_clusters', 16, 'deciding', '>= 1', "centres per class (16 in the authors' MNIST code).")
    """
    parameters = inspect.signature(cls.__init__).parameters  # type: ignore[misc]
    ranges, docs = declared_ranges(cls), docstring_arguments(cls)
    rows = []
    for name in constructor_arguments(cls):
        parameter = parameters[name]
        annotation = parameter.annotation
        bounds = ranges.get(name)
        rows.append(
            SettingRow(
                name=name,
                annotation="" if annotation is parameter.empty else str(annotation),
                default=parameter.default,
                role=_role(cls, name, fixed_roles or {}) if roles else None,
                range="" if bounds is None else str(bounds),
                doc=first_sentence(docs.get(name, "")),
            )
        )
    return rows
