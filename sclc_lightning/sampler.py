"""The model's sampler as the loop and the evaluation callbacks call it.

By default the loop calls the LightningModule's ``sample`` method; ``sampler`` names another
method (``"generate"``) or a function (a callable, or ``"package.module:function"``) called as
``f(module, num_samples, **kwargs)``. Its signature is checked once, at set-up, against exactly
the arguments the loop will pass:

- ``num_samples``, positionally;
- ``generator=`` (a :class:`torch.Generator`), when the sampler accepts it;
- ``conditions=`` (the condition field of the items to generate for), when the loop has a
  condition field;
- the loop's ``sample_kwargs`` (sampling settings such as ``temperature=0.9``), when given.

A sampler that cannot be called that way (a ``sample(mu, log_var)`` that means something else, a
required argument the loop does not know) is refused before anything trains, with the expected
signature and how to point the loop at another method.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sclc_lightning._callables import code_identity, describe_callable, resolve_callable

if TYPE_CHECKING:
    import torch

__all__ = ["BoundSampler", "Sampler", "SamplerError", "SamplerSpec", "bind_sampler", "describe_sampler"]

SamplerSpec = str | Callable[..., Any]
"""A method name of the module, ``"package.module:function"``, or a callable ``f(module, num_samples, **kw)``."""


class Sampler(Protocol):
    """The sampler as the loop calls it: a module's ``sample`` method (bound), or what
    ``sampler=`` names. The loop passes ``num_samples`` positionally and, by keyword, the
    generator every draw must come from (so that a run repeats), the conditions to generate for
    when the loop has a condition field, and its ``sample_kwargs`` (``temperature=0.9``, ...),
    which a sampler takes as keyword arguments of its own. It returns ``num_samples`` new data
    points shaped like the data field (a tensor) or whole items.

    The bundled models' ``sample`` methods satisfy it (the type checker checks them, in
    ``sclc_lightning/models/_protocol.py``); :func:`bind_sampler` checks a module's at set-up
    against the same keywords.

    Examples:
        >>> import torch
        >>> def sample(num_samples, *, generator=None, conditions=None, temperature=1.0):
        ...     return temperature * torch.randn(num_samples, 2, generator=generator)
        >>> sampler: Sampler = sample
        >>> sampler(3, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3, 2])
    """

    def __call__(
        self, num_samples: int, *, generator: torch.Generator | None = None, conditions: Any = None
    ) -> Any: ...


#: The keywords the loop passes (besides ``sample_kwargs``), from the protocol.
SAMPLER_KEYWORDS = tuple(
    name
    for name, parameter in inspect.signature(Sampler.__call__).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
)
_GENERATOR, _CONDITIONS = SAMPLER_KEYWORDS
_EXPECTED = f"sample(num_samples, *, {', '.join(f'{name}=None' for name in SAMPLER_KEYWORDS)})"


class SamplerError(TypeError):
    """The sampler cannot be found or called the way the loop calls it; the message shows the
    expected signature and how to name another one."""


def describe_sampler(spec: SamplerSpec, identity: bool = False) -> str:
    """The sampler as JSON-safe text: the method name, the import path, or
    ``"callable:module:qualname"``; with ``identity`` (for the resume fingerprint), an import
    path or a callable carries its code identity (:func:`~sclc_lightning._callables.code_identity`).
    A method of the module is the model's own code, named only."""
    if isinstance(spec, str) and ":" not in spec:
        return spec
    if identity:
        return describe_callable(spec) if isinstance(spec, str) else f"callable:{code_identity(spec)}"
    if isinstance(spec, str):
        return spec
    module = getattr(spec, "__module__", None) or type(spec).__module__
    name = getattr(spec, "__qualname__", None) or type(spec).__qualname__
    return f"callable:{module}:{name}"


def _hint(module_name: str) -> str:
    return (
        f" The loop calls a sampler as {_EXPECTED} and expects `num_samples` new data points shaped like"
        f" the data field. Point it at another method of {module_name} with `sampler='generate'` (its"
        " name), or at a function with `sampler='package.module:function'` or a callable, called as"
        " f(module, num_samples, *, generator=None, conditions=None)."
    )


@dataclass(frozen=True)
class BoundSampler:
    """A sampler bound to a module, with what it accepts.

    Attributes:
        function: called as ``function(num_samples, **kwargs)``.
        name: for messages, e.g. ``"VAE.generate"``.
        takes_generator: whether ``generator=`` is passed.
        takes_conditions: whether it accepts ``conditions=`` (a parameter of that name).
        extra: keyword arguments passed on every call (sampling settings).
        module: the module it is bound to.
    """

    function: Callable[..., Any]
    name: str
    takes_generator: bool
    takes_conditions: bool
    extra: Mapping[str, Any] = field(default_factory=dict)
    module: Any = field(default=None, compare=False, repr=False)

    def __call__(self, num_samples: int, *, generator: Any = None, conditions: Any = None) -> Any:
        kwargs: dict[str, Any] = dict(self.extra)
        if self.takes_generator:
            kwargs["generator"] = generator
        if conditions is not None:
            kwargs["conditions"] = conditions
        return self.function(num_samples, **kwargs)


def bind_sampler(
    module: Any, spec: SamplerSpec = "sample", *, condition_field: Any = None, extra: Mapping[str, Any] | None = None
) -> BoundSampler:
    """Find the sampler of ``module`` and check that the loop can call it.

    Args:
        module: the LightningModule.
        spec: a method name, an import path ``"package.module:function"`` or a callable
            ``f(module, num_samples, **kwargs)``.
        condition_field: the loop's condition field; when not ``None`` the loop passes
            ``conditions=``.
        extra: keyword arguments passed on every call (sampling settings), checked too.

    Raises:
        SamplerError: no such method, or its signature does not accept the loop's call.

    Examples:
        >>> class M:
        ...     def generate(self, n, *, generator=None):
        ...         return n
        >>> bind_sampler(M(), "generate").takes_generator
        True
        >>> bind_sampler(M(), "sample")
        Traceback (most recent call last):
        ...
        sclc_lightning.sampler.SamplerError: M has no method `sample`. ...
    """
    owner = type(module).__name__
    conditional = condition_field is not None
    function, name = _find_sampler(module, spec)
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # no signature to read (a builtin): trust the call
        return BoundSampler(function, name, True, conditional, dict(extra or {}), module)
    params = signature.parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    takes_generator = _GENERATOR in params or var_kw
    takes_conditions = _CONDITIONS in params
    passed: dict[str, Any] = dict(extra or {})
    if takes_generator:
        passed[_GENERATOR] = None
    if conditional:
        if not (takes_conditions or var_kw):
            raise SamplerError(
                f"`condition_field` is {condition_field!r}, so the loop passes `conditions=` to"
                f" {name}{signature}, which does not take it.{_hint(owner)}"
            )
        passed[_CONDITIONS] = None
    _check_call(name, signature, passed, extra, owner)
    takes = takes_conditions or (conditional and var_kw)
    return BoundSampler(function, name, takes_generator, takes, dict(extra or {}), module)


def _find_sampler(module: Any, spec: SamplerSpec) -> tuple[Callable[..., Any], str]:
    """The sampler ``spec`` names, called as ``f(num_samples, **kwargs)`` (a function is given
    ``module`` first), and its name for messages.

    Raises:
        SamplerError: no such method, or ``spec`` names nothing callable.
    """
    owner = type(module).__name__
    if isinstance(spec, str) and ":" not in spec:
        target = getattr(module, spec, None)
        if not callable(target):
            raise SamplerError(f"{owner} has no method `{spec}`.{_hint(owner)}")
        return target, f"{owner}.{spec}"
    try:
        raw = resolve_callable(spec, "sampler")
    except (TypeError, ValueError) as err:
        raise SamplerError(str(err)) from None
    if not callable(raw):
        raise SamplerError(f"`sampler` must be a method name, an import path or a callable, got {spec!r}.")
    return functools.partial(raw, module), describe_sampler(spec)


def _check_call(
    name: str, signature: inspect.Signature, passed: Mapping[str, Any], extra: Mapping[str, Any] | None, owner: str
) -> None:
    """Refuse a sampler whose ``signature`` cannot take ``num_samples`` and the keywords
    ``passed``, naming the call the loop makes and the ``sample_kwargs`` among them."""
    try:
        signature.bind(1, **passed)
    except TypeError as err:
        call = ", ".join(["num_samples", *(f"{k}=..." for k in passed)])
        settings = f" The loop's `sample_kwargs` passes {sorted(extra)}." if extra else ""
        raise SamplerError(
            f"{name}{signature} cannot be called as {name.rsplit('.', 1)[-1]}({call}): {err}.{settings}{_hint(owner)}"
        ) from None
