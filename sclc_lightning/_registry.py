"""Name → class registries of the extension points (correctors, model correctors, mixing
policies, theory providers), so that YAML can say ``corrector: optimal_transport`` or ``mode:
accumulate``, and name → function registries (schedules, scores: ``base=None``), all restorable
the same way.

Built-ins register themselves where they are defined (``@register_corrector("kmeans")`` above
the class) and nowhere else: a registry made with ``package=`` imports every module of that
package the first time it is asked what it holds, so a new built-in module is found without
being listed anywhere (docs/architecture.md, "Adding a built-in corrector")."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")
#: A registered name: written in YAML, so no spaces, not empty.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


class Registry(Generic[T]):
    """Registered subclasses of ``base`` by name.

    Args:
        kind: what is registered, for messages (``"corrector"``).
        base: the abstract base every registered class derives from.
        argument: the loop argument that names one (``"corrector"``, ``"mode"``); its keyword
            arguments are ``<argument>_kwargs``.
        package: the package whose modules define the built-ins (imported on first use).
    """

    #: Every registry made, for tools that must snapshot them (the test suite restores them
    #: after each test, so that what one test or doctest registers is not seen by the next).
    instances: ClassVar[list[Registry[Any]]] = []

    def __init__(self, kind: str, base: type[Any] | None, argument: str, package: str | None = None) -> None:
        self.kind, self.base, self.argument, self.package = kind, base, argument, package
        self._classes: dict[str, type[T]] = {}
        self._found, self._finding = package is None, False
        Registry.instances.append(self)

    def _find_builtins(self) -> None:
        """Import every module of :attr:`package` once: their decorators register the built-ins
        (a module that fails to import is raised, and tried again at the next question)."""
        if self._found or self._finding or self.package is None:
            return
        import importlib
        import pkgutil

        self._finding = True
        try:
            package = importlib.import_module(self.package)
            for module in pkgutil.iter_modules(package.__path__, self.package + "."):
                importlib.import_module(module.name)
            self._found = True
        finally:
            self._finding = False

    def snapshot(self) -> dict[str, type[T]]:
        """The registered classes by name, as they are now (the built-ins found first)."""
        self._find_builtins()
        return dict(self._classes)

    def restore(self, snapshot: dict[str, type[T]]) -> None:
        """Go back to what :meth:`snapshot` returned."""
        self._classes = dict(snapshot)

    def register(self, name: str) -> Callable[[Any], Any]:
        """Class decorator registering a subclass of ``base`` under ``name`` (sets its ``name``)."""

        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(
                f"`register_{self._slug}` needs a name of letters, digits, '_', '-' or '.' (it is written in YAML"
                f" as `{self.argument}: <name>`), got {name!r}."
            )

        def decorator(cls: Any) -> Any:
            if self.package is not None and not getattr(cls, "__module__", "").startswith(self.package + "."):
                self._find_builtins()  # a user's class: a clash with a built-in is refused here, now
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
        self._find_builtins()
        return name in self._classes

    def names(self) -> list[str]:
        """The registered names, sorted."""
        self._find_builtins()
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``, or the one an import path ``"package.module:Class"``
        names.

        Raises:
            ValueError: nothing is registered under ``name``; the message lists what is.
        """
        if isinstance(name, str) and ":" in name and self.base is not None:
            return self._imported(name)
        if name not in self:
            import difflib

            other = f" or a {self.base.__name__}" if self.base is not None else ""
            near = difflib.get_close_matches(str(name), self.names(), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValueError(f"`{self.argument}` must be one of {self.names()}{other}, got {name!r}{hint}.")
        return self._classes[name]

    def _imported(self, path: str) -> type[T]:
        """The class an import path ``"package.module:Class"`` names, refused unless it is a
        subclass of :attr:`base`."""
        import importlib

        assert self.base is not None
        module_name, _, attribute = path.partition(":")
        try:
            found = importlib.import_module(module_name)
            for part in attribute.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError, ValueError) as err:
            raise ValueError(
                f"`{self.argument}` {path!r} does not name an importable class ({type(err).__name__}: {err}); give a"
                f" registered name ({', '.join(self.names())}) or an import path 'package.module:Class'."
            ) from None
        if not (isinstance(found, type) and issubclass(found, self.base)):
            raise ValueError(f"`{self.argument}` {path!r} names {found!r}, not a {self.base.__name__} subclass.")
        return found

    def make(self, value: T | str, kwargs: Mapping[str, Any] | None = None) -> T:
        """Resolve a loop argument: an instance stays as it is, a name (or an import path
        ``"package.module:Class"``, whose instance is named by the path and its class's code) is
        instantiated with ``kwargs``.

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
                    import difflib

                    near = [n for u in unknown for n in difflib.get_close_matches(str(u), parameters, n=1)]
                    hint = f" (did you mean {', '.join(map(repr, near))}?)" if near else ""
                    raise ValueError(
                        f"`{self.argument}_kwargs` has {', '.join(map(repr, unknown))}{hint}, which the {self.kind}"
                        f" {value!r} does not take; it takes {sorted(parameters)}."
                    )
            made = cls(**kwargs)
            if ":" in value:  # a user's class by import path: recorded by its code, not its name
                from sclc_lightning._callables import CODE_MARK, class_identity

                made.name = f"{value}{CODE_MARK}{class_identity(cls).partition(CODE_MARK)[2]}"  # type: ignore[attr-defined]
            return made
        if value is None:  # where None is accepted (no corrector), the caller handles it first
            raise ValueError(f"`{self.argument}` must be one of {self.names()} or a {self.base.__name__}, got None.")
        raise TypeError(f"`{self.argument}` must be a {self.base.__name__} or a registered name, got {value!r}.")
