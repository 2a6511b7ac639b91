"""Name → class registries of the extension points (correctors, mixing policies), so that YAML
can say ``corrector: optimal_transport`` or ``mode: accumulate``, and name → function registries
(schedules, scores: ``base=None``), all restorable the same way."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Registered subclasses of ``base`` by name.

    Args:
        kind: what is registered, for messages (``"corrector"``).
        base: the abstract base every registered class derives from.
        argument: the loop argument that names one (``"corrector"``, ``"mode"``); its keyword
            arguments are ``<argument>_kwargs``.
    """

    #: Every registry made, for tools that must snapshot them (the test suite restores them
    #: after each test, so that what one test or doctest registers is not seen by the next).
    instances: ClassVar[list[Registry[Any]]] = []

    def __init__(self, kind: str, base: type[Any] | None, argument: str) -> None:
        self.kind, self.base, self.argument = kind, base, argument
        self._classes: dict[str, type[T]] = {}
        Registry.instances.append(self)

    def snapshot(self) -> dict[str, type[T]]:
        """The registered classes by name, as they are now."""
        return dict(self._classes)

    def restore(self, snapshot: dict[str, type[T]]) -> None:
        """Go back to what :meth:`snapshot` returned."""
        self._classes = dict(snapshot)

    def register(self, name: str) -> Callable[[Any], Any]:
        """Class decorator registering a subclass of ``base`` under ``name`` (sets its ``name``)."""

        def decorator(cls: Any) -> Any:
            if self.base is None:
                if not callable(cls):
                    raise TypeError(f"`register_{self._slug}` decorates functions, got {cls!r}.")
            elif not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise TypeError(f"`register_{self._slug}` decorates {self.base.__name__} subclasses, got {cls!r}.")
            existing = self._classes.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(f"A {self.kind} is already registered as {name!r}: {existing.__qualname__}.")
            if self.base is not None:
                setattr(cls, "name", name)  # noqa: B010 - `cls` is narrowed to type[T], which declares no `name`
            self._classes[name] = cls
            return cls

        return decorator

    @property
    def _slug(self) -> str:
        return self.kind.replace(" ", "_")

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``.

        Raises:
            ValueError: nothing is registered under ``name``; the message lists what is.
        """
        if name not in self._classes:
            other = f" or a {self.base.__name__}" if self.base is not None else ""
            raise ValueError(f"`{self.argument}` must be one of {self.names()}{other}, got {name!r}.")
        return self._classes[name]

    def make(self, value: T | str, kwargs: Mapping[str, Any] | None = None) -> T:
        """Resolve a loop argument: an instance stays as it is, a name is instantiated with
        ``kwargs``.

        Raises:
            ValueError: ``kwargs`` given with an instance, or naming an argument the registered
                class does not take.
            ValueError: ``value`` is ``None``.
            TypeError: ``value`` is neither.
        """
        if self.base is None:
            raise TypeError(f"The {self.kind} registry holds functions: `get` one, there is nothing to make.")
        if isinstance(value, self.base):
            if kwargs:
                raise ValueError(
                    f"`{self.argument}_kwargs` is only used with a registered {self.kind} name,"
                    f" got {self.argument}={value!r} and {self.argument}_kwargs={dict(kwargs)!r}."
                )
            return value
        if isinstance(value, str):
            cls = self.get(value)
            kwargs = dict(kwargs or {})
            parameters = inspect.signature(cls).parameters
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
                unknown = sorted(set(kwargs) - set(parameters))
                if unknown:
                    raise ValueError(
                        f"`{self.argument}_kwargs` has {', '.join(map(repr, unknown))}, which the {self.kind}"
                        f" {value!r} does not take; it takes {sorted(parameters)}."
                    )
            return cls(**kwargs)
        if value is None:  # where None is accepted (no corrector), the caller handles it first
            raise ValueError(f"`{self.argument}` must be one of {self.names()} or a {self.base.__name__}, got None.")
        raise TypeError(f"`{self.argument}` must be a {self.base.__name__} or a registered name, got {value!r}.")
