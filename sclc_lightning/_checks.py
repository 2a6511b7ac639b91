"""Checks of plain arguments, with the messages the house style asks for: the argument, what it
must be and the value given. Numbers may be Python or NumPy scalars (``np.float32(0.5)`` is a
number); text is never a number (``"1e-3"`` is refused, naming the fix)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import numbers
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "Range",
    "bounded",
    "check_arguments",
    "check_choice",
    "check_keys",
    "check_number",
    "check_numbers",
    "declared_ranges",
    "is_integer",
    "is_number",
]


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
    infinite: bool = False,
) -> Any:
    """``value`` as a Python ``float`` (``int`` with ``integer``), refused unless it is a finite
    number in range.

    Raises:
        ValueError: "`name` must be a finite number >= 0, got ...", saying so when text was given.
            With ``infinite``, +inf and -inf pass the range checks as numbers (NaN never does).

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
    kind = "an integer" if integer else "a number" if infinite else "a finite number"
    bounds = [f">= {minimum:g}" if minimum is not None else "", f"> {above:g}" if above is not None else ""]
    bounds.append(f"<= {maximum:g}" if maximum is not None else "")
    expected = " and ".join(b for b in bounds if b)
    wanted = f"`{name}` must be {kind}{' ' + expected if expected else ''}{' (inf allowed)' if infinite else ''}"
    ok = (
        is_integer(value)
        if integer
        else is_number(value) and (math.isfinite(float(value)) or (infinite and not math.isnan(float(value))))
    )
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


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``, else refused naming them and the nearest.

    Examples:
        >>> try:
        ...     check_choice("estimator", "unbaised", ["unbiased", "mle"])
        ... except ValueError as err:
        ...     print(err)
        `estimator` must be one of ['mle', 'unbiased'], got 'unbaised' (did you mean 'unbiased'?).
    """
    import difflib

    valid = sorted(choices)
    if isinstance(value, str) and value in valid:
        return value
    near = difflib.get_close_matches(value, valid, n=1) if isinstance(value, str) else []
    raise ValueError(
        f"`{name}` must be one of {valid}, got {value!r}" + (f" (did you mean {near[0]!r}?)." if near else ".")
    )


@dataclasses.dataclass(frozen=True)
class Range:
    """Where a numeric argument must lie, for :func:`check_arguments` (the bounds of
    :func:`check_number`; ``infinite`` lets ``inf`` through, never NaN)."""

    minimum: float | None = None
    above: float | None = None
    maximum: float | None = None
    infinite: bool = False

    def __str__(self) -> str:
        """The range as the docs write it.

        Examples:
            >>> print(Range(minimum=1), Range(above=0, maximum=1), Range(minimum=0, infinite=True))
            >= 1 (0, 1] >= 0 or inf
        """
        low = f"[{self.minimum:g}" if self.minimum is not None else f"({self.above:g}" if self.above is not None else ""
        if low and self.maximum is not None and (self.minimum is None or self.above is None):
            text = f"{low}, {self.maximum:g}]"
        else:
            bounds = [f">= {self.minimum:g}" if self.minimum is not None else ""]
            bounds += [f"> {self.above:g}" if self.above is not None else ""]
            bounds += [f"<= {self.maximum:g}" if self.maximum is not None else ""]
            text = " and ".join(b for b in bounds if b)
        return f"{text} or inf" if self.infinite and text else "any number or inf" if self.infinite else text


def bounded(**ranges: Range) -> Mapping[str, Range]:
    """A class's ``ranges`` declaration: each argument's :class:`Range`, read-only.

    Examples:
        >>> class Clusters:
        ...     ranges = bounded(num_clusters=COUNT)
        >>> str(Clusters.ranges["num_clusters"])
        '>= 1'
    """
    return types.MappingProxyType(ranges)


COUNT = Range(minimum=1)
NON_NEGATIVE = Range(minimum=0)
POSITIVE = Range(above=0)
FRACTION = Range(minimum=0, maximum=1)


def check_ema_decay(value: float | None) -> None:
    """Refuses an EMA decay of 1 (checked in range [0, 1] before): the average would keep the
    first step's weights forever and every sample would come from them.

    Examples:
        >>> check_ema_decay(0.999)
        >>> try:
        ...     check_ema_decay(1.0)
        ... except ValueError as err:
        ...     print(err)
        `ema_decay` must be below 1 (at 1 the average never leaves the first step's weights), got 1.0.
    """
    if value is not None and value >= 1:
        raise ValueError(
            f"`ema_decay` must be below 1 (at 1 the average never leaves the first step's weights), got {value!r}."
        )


class _Kinds(NamedTuple):
    """What an annotation admits, as far as it can be read: the scalar kinds, the choices of a
    ``Literal``, and whether something else (a tensor, a callable, a mapping ...) is admitted too."""

    scalars: frozenset[type]
    choices: tuple[Any, ...]
    other: bool


def _kinds(annotation: Any) -> _Kinds:
    scalars: set[type] = set()
    choices: list[Any] = []
    other = False
    for arm in typing.get_args(annotation) if _is_union(annotation) else (annotation,):
        if arm is type(None) or arm is None:
            scalars.add(type(None))
        elif typing.get_origin(arm) is typing.Literal:
            choices.extend(typing.get_args(arm))
        elif arm in (int, float, bool, str):
            scalars.add(arm)
        else:
            other = True
    return _Kinds(frozenset(scalars), tuple(choices), other)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


@functools.cache
def _annotations(function: Callable[..., Any]) -> dict[str, tuple[_Kinds, Any]]:
    """Each parameter's readable annotation (those naming only what the module can evaluate at
    run time; one that cannot be read is left to the function's own checks) and its default."""
    found = {}
    function = inspect.unwrap(function)  # a class's __init__ wrapped by plain_numbers
    namespace = {**vars(typing), **getattr(function, "__globals__", {})}
    for parameter in inspect.signature(function).parameters.values():
        annotation = parameter.annotation
        if annotation is parameter.empty:
            continue
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)
            except Exception:  # a name imported for type checking only: not checked here
                continue
        found[parameter.name] = (_kinds(annotation), parameter.default)
    return found


def declared_ranges(cls: type) -> dict[str, Range]:
    """The ranges of ``cls``'s constructor arguments, as the class declares them in its
    ``ranges`` class attribute (a mapping of argument names to :class:`Range`), with those its
    bases declare for arguments its constructor also takes (``strength``, declared once by
    :class:`~sclc_lightning.correctors.base.Corrector`).

    Examples:
        >>> class Base:
        ...     ranges = {"strength": Range(minimum=0)}
        >>> class Clusters(Base):
        ...     ranges = {"num_clusters": COUNT}
        ...     def __init__(self, strength: float = 1.0, num_clusters: int = 8) -> None: ...
        >>> {name: str(r) for name, r in declared_ranges(Clusters).items()}
        {'strength': '>= 0', 'num_clusters': '>= 1'}
    """
    arguments = set(inspect.signature(cls.__init__).parameters)  # type: ignore[misc]
    found: dict[str, Range] = {}
    for base in reversed(cls.__mro__[1:]):
        found.update(vars(base).get("ranges", {}))
    found = {name: bounds for name, bounds in found.items() if name in arguments}
    found.update(vars(cls).get("ranges", {}))  # its own: a name it does not take is refused on use
    return found


def check_arguments(function: Callable[..., Any] | type, values: Mapping[str, Any], **ranges: Range) -> None:
    """Check the arguments a function was given (``values``: its ``locals()`` at the start)
    against its annotations: numbers are numbers (NumPy scalars included, text refused, NaN
    refused, a fraction refused for an ``int``, inf refused unless the default is infinite),
    flags are ``True``/``False``, a ``Literal`` is one of its choices, ``None`` only where the
    annotation admits it. ``ranges`` bounds numbers. Given a class, its constructor's arguments
    are checked, bounded by the ranges the class declares (:func:`declared_ranges`).
    Annotations this cannot read (``Callable``, tensors, mappings) are left to the function.

    Raises:
        ValueError: one line naming the argument, what it must be and the value given.

    Examples:
        >>> from typing import Literal
        >>> def build(width: int = 64, lr: float = 1e-3, kind: Literal["mlp", "linear"] = "mlp") -> None:
        ...     check_arguments(build, locals(), width=COUNT, lr=POSITIVE)
        >>> build(width=8)
        >>> try:
        ...     build(lr=float("nan"))
        ... except ValueError as err:
        ...     print(err)
        `lr` must be a finite number > 0, got nan.
        >>> try:
        ...     build(kind="mpl")
        ... except ValueError as err:
        ...     print(err)
        `kind` must be one of ['linear', 'mlp'], got 'mpl' (did you mean 'mlp'?).
    """
    if isinstance(function, type):
        ranges = {**declared_ranges(function), **ranges}
        function = function.__init__  # type: ignore[misc]
    annotations = _annotations(function)
    unknown = set(ranges) - set(annotations)
    if unknown:
        raise TypeError(
            f"check_arguments: ranges for {sorted(unknown)}, which {function.__qualname__} has no readable"
            " annotation for."
        )
    for name, (kinds, default) in annotations.items():
        if name in values and not _admitted(name, values[name], kinds, default, ranges.get(name, Range())):
            raise ValueError(_refusal(name, values[name], kinds))


def _admitted(name: str, value: Any, kinds: _Kinds, default: Any, bounds: Range) -> bool:
    """Whether ``value`` is of a kind the annotation admits (``None`` also where the default is
    ``None``); a number out of ``bounds``, ``None`` or a flag refused for a number, or text outside
    a ``Literal``'s choices raises here, with its own message (a number's names its range)."""
    scalars, _, other = kinds
    if value is None:
        admitted = type(None) in scalars or default is None or other
        if not admitted and (int in scalars or float in scalars):
            _number_admitted(name, value, kinds, default, bounds)  # refused as a number, with its range
        return admitted
    if isinstance(value, (bool, np.bool_)):
        if not (bool in scalars or other) and (int in scalars or float in scalars):
            _number_admitted(name, value, kinds, default, bounds)  # refused as a number, with its range
        return bool in scalars or other
    if is_number(value):
        return _number_admitted(name, value, kinds, default, bounds)
    if isinstance(value, str):
        return _text_admitted(name, value, kinds, bounds)
    return other


def _number_admitted(name: str, value: Any, kinds: _Kinds, default: Any, bounds: Range) -> bool:
    """A number for a ``float`` or an ``int`` annotation, checked against ``bounds`` (a refusal
    raises); ``False`` when the annotation admits no number."""
    scalars, _, other = kinds
    if float in scalars:
        # a setting whose default is infinite (a strength, a cap) takes inf
        infinite = bounds.infinite or (is_number(default) and math.isinf(default))
        check_number(name, value, minimum=bounds.minimum, above=bounds.above, maximum=bounds.maximum, infinite=infinite)
        return True
    if int in scalars:
        check_number(name, value, minimum=bounds.minimum, above=bounds.above, maximum=bounds.maximum, integer=True)
        return True
    return other


def _text_admitted(name: str, value: str, kinds: _Kinds, bounds: Range) -> bool:
    """Text for a ``Literal`` (one of its choices, else a refusal naming the nearest) or a
    ``str``; text given for a number raises :func:`check_number`'s message (with the range)
    naming the fix."""
    scalars, choices, other = kinds
    if choices and str not in scalars:
        check_choice(name, value, [c for c in choices if isinstance(c, str)])
        return True
    if str in scalars or other:
        return True
    if int in scalars or float in scalars:
        check_number(
            name,
            value,
            minimum=bounds.minimum,
            above=bounds.above,
            maximum=bounds.maximum,
            integer=float not in scalars,
        )
    return False


def _refusal(name: str, value: Any, kinds: _Kinds) -> str:
    """The message refusing ``value``: the kinds and choices the annotation admits."""
    wanted = [k.__name__ if k is not type(None) else "None" for k in sorted(kinds.scalars, key=str)]
    wanted += [repr(c) for c in kinds.choices]
    return f"`{name}` must be {' or '.join(wanted) or 'something else'}, got {value!r}."


def check_numbers(name: str, value: Any) -> np.ndarray:
    """``value`` (a number or a nested list of numbers, a NumPy array, a tensor) as a float64
    array, refused when an entry is text, a bool, NaN or infinite, or the lists are ragged.

    Examples:
        >>> check_numbers("weights", [0.5, np.float32(0.5)])
        array([0.5, 0.5])
        >>> try:
        ...     check_numbers("means", [[0.0, "1"]])
        ... except ValueError as err:
        ...     print(err)
        `means` must hold finite numbers only, got [[0.0, '1']].
    """

    def leaves(item: Any) -> Iterable[Any]:
        if isinstance(item, (list, tuple)):
            for inner in item:
                yield from leaves(inner)
        else:
            yield item

    if hasattr(value, "detach"):  # a tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        ok = value.dtype.kind in "iuf"
    else:
        ok = all(
            is_number(leaf) or (isinstance(leaf, np.ndarray) and leaf.dtype.kind in "iuf") for leaf in leaves(value)
        )
    if ok:
        try:
            array = np.asarray(value, dtype=np.float64)
        except ValueError:  # ragged lists
            ok = False
        else:
            ok = bool(np.isfinite(array).all())
    if not ok:
        raise ValueError(f"`{name}` must hold finite numbers only, got {value!r}.")
    return array


def plain(value: Any) -> Any:
    """``value`` with NumPy scalars made Python numbers, inside lists, tuples and dicts too, so
    that what a module records (hyperparameters, settings) loads anywhere (a checkpoint holding
    a NumPy scalar is refused by ``torch.load(weights_only=True)``).

    Examples:
        >>> plain({"lr": np.float32(0.5), "sizes": (np.int64(2), 3)})
        {'lr': 0.5, 'sizes': (2, 3)}
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def plain_hyperparameters(module: Any) -> None:
    """Make the hyperparameters ``save_hyperparameters`` recorded plain Python values (see :func:`plain`)."""
    for name, value in list(module.hparams.items()):
        module.hparams[name] = plain(value)
    initial = getattr(module, "_hparams_initial", None)
    if initial is not None:
        for name, value in list(initial.items()):
            initial[name] = plain(value)


def plain_in_place(container: Any) -> Any:
    """Replace NumPy scalars by Python numbers inside ``container`` (dicts and lists changed in
    place, whatever their type; tuples rebuilt when they hold one); tensors are left alone.
    The loop runs it on every checkpoint it is part of, so that a NumPy number that reached an
    optimizer's learning rate or a callback's state does not make the file unloadable with
    ``weights_only=True``.

    Examples:
        >>> from collections import OrderedDict
        >>> state = OrderedDict(lr=np.float32(0.5), groups=[{"betas": (np.float64(0.9), 0.99)}])
        >>> dict(plain_in_place(state))
        {'lr': 0.5, 'groups': [{'betas': (0.9, 0.99)}]}
    """
    if isinstance(container, np.generic):
        return container.item()
    if isinstance(container, dict):
        for key, value in container.items():
            new = plain_in_place(value)
            if new is not value:
                container[key] = new
    elif isinstance(container, list):
        for index, value in enumerate(container):
            new = plain_in_place(value)
            if new is not value:
                container[index] = new
    elif isinstance(container, tuple):
        items = [plain_in_place(v) for v in container]
        if any(new is not old for new, old in zip(items, container)):
            return type(container)(*items) if hasattr(container, "_fields") else type(container)(items)
    return container


T = typing.TypeVar("T", bound=type)


def _holds_numpy(value: Any) -> bool:
    if isinstance(value, np.generic):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_numpy(v) for v in value)
    if type(value) is dict:
        return any(_holds_numpy(v) for v in value.values())
    return False


def plain_numbers(cls: T) -> T:
    """Class decorator: after ``__init__``, every attribute holding a NumPy scalar (or a list,
    tuple or dict of them) holds Python numbers instead, and so do a LightningModule's recorded
    hyperparameters. Arguments are checked to be numbers,
    NumPy's included (:func:`check_arguments`); from there on the object works with what the
    rest of Python expects (``DataLoader(batch_size=np.int64(64))`` is refused by torch, a
    NumPy scalar in a checkpoint does not load with ``weights_only=True``).

    Examples:
        >>> @plain_numbers
        ... class Settings:
        ...     def __init__(self, batch_size: int = 64) -> None:
        ...         self.batch_size = batch_size
        >>> type(Settings(np.int64(8)).batch_size)
        <class 'int'>
    """
    init = cls.__init__  # type: ignore[misc]

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        for name, value in list(vars(self).items()):
            if _holds_numpy(value):
                setattr(self, name, plain(value))
        if hasattr(self, "save_hyperparameters"):  # a LightningModule: what it recorded, too
            plain_hyperparameters(self)

    cls.__init__ = __init__  # type: ignore[misc]
    return cls
