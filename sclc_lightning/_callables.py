"""User callables: resolved from the ``"package.module:function"`` strings YAML gives, and
identified by what they do, so that a run's record names the code that made it.

:func:`code_identity` is the identity the loop records for every callable it is given (rewards,
scores, verifiers, schedules, samplers, field rules, the callables of correctors and mixing
policies): ``"module:qualname#<digest>"``, the digest taken from the function's source text
where Python can find it (its code object otherwise), its defaults, the values it closes over,
the plain constants it reads from its module, and a ``functools.partial``'s arguments. Functions
it calls are not followed: editing a helper that a recorded function calls goes unnoticed. A
built-in or C function is identified by its qualified name. Nothing in it depends on the process
(no addresses, no hash randomisation), so two processes running the same code agree.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import inspect
import math
import re
import textwrap
import types
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "CODE_MARK",
    "class_identity",
    "code_identity",
    "describe_callable",
    "recorded_settings",
    "resolve_callable",
    "strip_code_identities",
]

#: What separates a callable's name from its digest in a recorded identity.
CODE_MARK = "#code:"
_IDENTITY = re.compile(re.escape(CODE_MARK) + r"[0-9a-f]{16}")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_PLAIN = (bool, int, float, complex, str, bytes, type(None))


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
        raise ValueError(
            f"`{argument}` {value!r} does not name an importable object ({err}): give a callable or an import path"
            " 'package.module:function'."
        ) from err
    if not callable(target):
        raise ValueError(f"`{argument}` {value!r} is not callable.")
    return target  # type: ignore[no-any-return]


def _name(value: Any) -> str:
    module = getattr(value, "__module__", None) or type(value).__module__
    qualname = getattr(value, "__qualname__", None) or type(value).__qualname__
    return f"{module}:{qualname}"


def _lambda_source(lines: str) -> str | None:
    """The text of the lambda that starts on the first of ``lines`` (``inspect.getsource`` gives
    the whole statement around it), or ``None`` when that line holds more than one lambda (its
    code object is used then). Other arguments on the same line are not part of it."""
    first = lines.splitlines()[0] if lines else ""
    starts = [m.start() for m in re.finditer(r"\blambda\b", first)]
    if len(starts) != 1:
        return None
    candidate = lines[starts[0] :][:2000]
    for end in range(len(candidate), 0, -1):  # the longest text from there that is one lambda
        try:
            node = ast.parse(candidate[:end], mode="eval").body
        except SyntaxError:
            continue
        if isinstance(node, ast.Lambda):
            return ast.unparse(node)
    return None


def _source(function: types.FunctionType) -> str | None:
    """The function's source text, if Python finds it and it is the code that runs: a file
    edited after the import gives the new text for the old code, so the text is compiled and its
    bytecode compared with the function's (``None`` when they differ: the code object is used)."""
    try:
        lines = inspect.getsource(function)
    except (OSError, TypeError):
        return None
    text = _lambda_source(lines) if function.__name__ == "<lambda>" else textwrap.dedent(lines)
    if text is None or not _compiles_to(text, function.__code__):
        return None
    return text


def _compiles_to(text: str, code: types.CodeType) -> bool:
    try:
        compiled = compile(text, "<source>", "exec")
    except (SyntaxError, ValueError):
        return False
    stack = [compiled]
    while stack:
        candidate = stack.pop()
        if candidate.co_name == code.co_name and _code_parts(candidate) == _code_parts(code):
            return True
        stack.extend(c for c in candidate.co_consts if isinstance(c, types.CodeType))
    return False


def _code_parts(code: types.CodeType) -> list[Any]:
    """The content of a code object without its position in a file: bytecode, constants (nested
    code included), names and arguments."""
    constants = [_code_parts(c) if isinstance(c, types.CodeType) else _value_parts(c, set()) for c in code.co_consts]
    return [
        code.co_code.hex(),
        constants,
        list(code.co_names),
        list(code.co_varnames),
        list(code.co_freevars),
        code.co_argcount,
        code.co_kwonlyargcount,
        code.co_flags,
    ]


#: Packages whose classes' methods are not the user's code (their version is not recorded either).
_LIBRARIES = frozenset({"builtins", "torch", "lightning", "pytorch_lightning", "numpy", "sklearn", "sclc_lightning"})


def _plain_data(value: Any) -> bool:
    """Numbers, strings, and lists, tuples, sets and dicts of them (nested): a module's data."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_plain_data(v) for v in value)
    if isinstance(value, dict):
        return all(_plain_data(k) and _plain_data(v) for k, v in value.items())
    return False


def _global_constants(function: types.FunctionType) -> dict[str, Any]:
    """The plain data (numbers, strings, and lists, tuples, sets and dicts of them) that
    ``function`` reads from its module by name: editing such a constant changes what the
    function returns."""
    names: set[str] = set()
    stack = [function.__code__]
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    found: dict[str, Any] = {}
    for name in sorted(names):
        if name in function.__globals__:
            value = function.__globals__[name]
            if _plain_data(value):
                found[name] = _value_parts(value, set())
    return found


def _value_parts(value: Any, seen: set[int]) -> Any:
    """``value`` as data that is the same in every process whenever the value is."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, _PLAIN):
        return repr(value)
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return _container_parts(value, seen)
    if isinstance(value, types.ModuleType):
        return ["module", value.__name__]
    if isinstance(value, type):
        return ["class", _name(value)]
    if callable(value):
        return ["callable", _identity_parts(value, seen)]
    return _object_parts(value, seen)


def _container_parts(
    value: list[Any] | tuple[Any, ...] | set[Any] | frozenset[Any] | dict[Any, Any], seen: set[int]
) -> Any:
    """A list, tuple, set or dict as :func:`_value_parts` of its items; a set's and a dict's
    items sorted, so that their order (hash randomisation) does not count."""
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [_value_parts(v, seen) for v in value]]
    if isinstance(value, (set, frozenset)):
        return [type(value).__name__, sorted(repr(_value_parts(v, seen)) for v in value)]
    return ["dict", sorted((repr(_value_parts(k, seen)), _value_parts(v, seen)) for k, v in value.items())]


def _object_parts(value: Any, seen: set[int]) -> Any:
    """Any other object: a tensor by its shape, dtype and a digest of its data, an object with
    its own ``__repr__`` by that text (addresses removed), another by its attributes (once:
    ``seen`` stops a cycle)."""
    try:
        import torch

        if isinstance(value, torch.Tensor):
            data = value.detach().cpu().contiguous()
            return ["tensor", list(data.shape), str(data.dtype), hashlib.sha256(data.numpy().tobytes()).hexdigest()]
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    cls = type(value)
    if cls.__repr__ is not object.__repr__:
        return ["object", _name(cls), _ADDRESS.sub("", repr(value))]
    if hasattr(value, "__dict__") and id(value) not in seen:
        seen.add(id(value))
        return ["object", _name(cls), _value_parts(dict(vars(value)), seen)]
    return ["object", _name(cls)]


def _identity_parts(value: Any, seen: set[int]) -> Any:
    if id(value) in seen:  # a function that closes over itself
        return ["again", _name(value)]
    seen = seen | {id(value)}
    if isinstance(value, functools.partial):
        return [
            "partial",
            _identity_parts(value.func, seen),
            [_value_parts(a, seen) for a in value.args],
            _value_parts(dict(value.keywords), seen),
        ]
    if isinstance(value, types.MethodType):
        owner = value.__self__
        # the object's state counts: C(0.5).meth and C(3.0).meth are other schedules
        bound = ["class", _name(owner)] if isinstance(owner, type) else ["instance of", _value_parts(owner, seen)]
        return ["method", _identity_parts(value.__func__, seen), bound]
    if isinstance(value, types.FunctionType):
        source = _source(value)
        closure = [
            [name, _value_parts(cell.cell_contents, seen) if _filled(cell) else "<empty>"]
            for name, cell in zip(value.__code__.co_freevars, value.__closure__ or ())
        ]
        return [
            "function",
            _name(value),
            source if source is not None else _code_parts(value.__code__),
            _value_parts(value.__defaults__ or (), seen),
            _value_parts(value.__kwdefaults__ or {}, seen),
            closure,
            _global_constants(value),
        ]
    if isinstance(value, type):
        return ["class", _name(value)]
    wrapped = getattr(value, "__wrapped__", None)
    if callable(wrapped):  # functools.cache, lru_cache and other C wrappers of a Python function
        return ["wrapped", _name(value), _identity_parts(wrapped, seen)]
    call = type(value).__call__  # type: ignore[operator]
    if not isinstance(call, types.FunctionType):  # built-in and C callables (ufuncs, ...)
        return ["builtin", _name(value)]
    # an object of a Python class with __call__: its class's __call__, the methods its own
    # classes define (a torch module's forward), and its attributes (a module's weights)
    own = [
        [name, _identity_parts(method, seen)]
        for cls in type(value).__mro__
        if cls.__module__.split(".")[0] not in _LIBRARIES
        for name, method in sorted(vars(cls).items())
        if isinstance(method, types.FunctionType)
    ]
    state = _value_parts(dict(vars(value)), seen) if hasattr(value, "__dict__") else None
    library = (call.__module__ or "").split(".")[0] in _LIBRARIES  # torch's Module.__call__: named only
    call_part = ["library", _name(call)] if library else _identity_parts(call, seen)
    return ["callable object", _name(type(value)), call_part, own, state]


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - reading it is the test
    except ValueError:
        return False
    return True


def code_identity(value: Callable[..., Any]) -> str:
    """``"module:qualname#code:<16 hex>"``: ``value``'s name and a digest of what it does (see
    the module's documentation); a built-in keeps its name alone.

    Examples:
        >>> def double(x):
        ...     return 2 * x
        >>> code_identity(double).split("#")[0]
        'sclc_lightning._callables:double'
        >>> def triple(x):
        ...     return 3 * x
        >>> triple.__qualname__ = "double"
        >>> code_identity(triple) == code_identity(double)
        False
        >>> code_identity(len)
        'builtins:len'
    """
    parts = _identity_parts(value, set())
    if parts[0] == "builtin":
        return str(parts[1])
    name = _name(value.func) if isinstance(value, functools.partial) else _name(value)
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
    return f"{name}{CODE_MARK}{digest}"


def class_identity(cls: type) -> str:
    """``"module:qualname#code:<16 hex>"`` for a user's class: its name and a digest of the
    methods and plain class attributes that it and the classes it derives from outside the
    libraries define (editing any of them changes it).

    Examples:
        >>> class Half:
        ...     scale = 0.5
        ...     def apply(self, x):
        ...         return self.scale * x
        >>> first = class_identity(Half)
        >>> Half.scale = 0.25
        >>> first.split("#")[0], class_identity(Half) == first
        ('sclc_lightning._callables:Half', False)
    """
    parts = []
    for owner in cls.__mro__:
        if owner is object or (owner is not cls and owner.__module__.split(".")[0] in _LIBRARIES):
            continue
        members = []
        for name, member in sorted(vars(owner).items()):
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, property):
                member = member.fget
            if isinstance(member, types.FunctionType):
                members.append([name, _identity_parts(member, set())])
            elif not name.startswith("__") and _plain_data(member):
                members.append([name, _value_parts(member, set())])
        parts.append([_name(owner), members])
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
    return f"{_name(cls)}{CODE_MARK}{digest}"


def describe_callable(value: Callable[..., Any] | str, resolved: Callable[..., Any] | None = None) -> str:
    """What a run records for a callable setting: an import path keeps its text, with the
    identity of what it names (``"pkg.mod:f#code:..."``); a callable its :func:`code_identity`."""
    if isinstance(value, str):
        target = resolved if resolved is not None else resolve_callable(value, "callable")
        identity = code_identity(target)  # type: ignore[arg-type]
        digest = identity.partition(CODE_MARK)[2]
        return f"{value}{CODE_MARK}{digest}" if digest else value
    return code_identity(value)


def strip_code_identities(value: Any) -> Any:
    """``value`` with every code digest removed: how a record written before code identities
    (which named callables only) is compared with today's."""
    if isinstance(value, str):
        return _IDENTITY.sub("", value)
    if isinstance(value, dict):
        return {k: strip_code_identities(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_code_identities(v) for v in value]
    return value


#: An import path ``package.module:attribute``.
_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def recorded_settings(settings: Any, key: str = "") -> Any:
    """``settings`` as a bench or grid records them: a class or callable given by import path
    (``package.module:Name``) carries the digest of its code (``...#code:<hex>``), so that a rerun
    after the code was edited is not mistaken for the same method.

    Examples:
        >>> recorded_settings({"corrector": "kmeans", "corrector_kwargs": {"num_clusters": 4}})
        {'corrector': 'kmeans', 'corrector_kwargs': {'num_clusters': 4}}
        >>> recorded_settings({"sampler": "sclc_lightning.seeding:make_generator"})["sampler"].split("#")[0]
        'sclc_lightning.seeding:make_generator'
    """
    if isinstance(settings, Mapping):
        return {k: recorded_settings(v, str(k)) for k, v in settings.items()}
    if isinstance(settings, list):
        return [recorded_settings(v, key) for v in settings]
    if not isinstance(settings, str) or not _IMPORT_PATH.fullmatch(settings):
        return settings
    try:
        target = resolve_callable(settings, key or "setting")
    except ValueError:
        return settings  # not importable here: the loop refuses it, naming it
    identity = class_identity(target) if isinstance(target, type) else code_identity(target)  # type: ignore[arg-type]
    digest = identity.partition(CODE_MARK)[2]
    return f"{settings}{CODE_MARK}{digest}" if digest else settings
