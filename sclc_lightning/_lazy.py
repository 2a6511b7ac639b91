"""Names imported when first used, and old import paths that still work.

:func:`lazy` gives a package the PEP 562 ``__getattr__`` that imports a public name from its
module on first use, so that importing the package loads nothing heavy. :func:`forward` gives a
module that moved the ``__getattr__`` that forwards its names to the new module, after one
:class:`DeprecationWarning` naming the new path."""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["forward", "lazy"]


def forward(old: str, new: str, *more: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the module ``old``, which moved to ``new`` (and, when
    its names were split, to the modules ``more``).

    Examples:
        >>> import sys, warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     getattr_, dir_ = forward("old.place", "sclc_lightning.seeding")
        >>> str(caught[0].message)
        'old.place moved to sclc_lightning.seeding; import it from there (the old path will be removed).'
        >>> getattr_("derive_seed") is sys.modules["sclc_lightning.seeding"].derive_seed
        True
    """
    places = " and ".join((new, *more))
    warnings.warn(
        f"{old} moved to {places}; import it from there (the old path will be removed).",
        DeprecationWarning,
        stacklevel=3,
    )
    targets = [importlib.import_module(name) for name in (new, *more)]

    def __getattr__(name: str) -> Any:
        for target in targets:
            if hasattr(target, name):
                return getattr(target, name)
        raise AttributeError(f"module {old!r} (moved to {places}) has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({name for target in targets for name in dir(target)})

    return __getattr__, __dir__


def lazy(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose public names live in the modules
    ``exports`` maps them to; each is imported once, on first use.

    Examples:
        >>> getattr_, dir_ = lazy("demo", {"reseed": "sclc_lightning.seeding"})
        >>> getattr_("reseed").__module__, "reseed" in dir_()
        ('sclc_lightning.seeding', True)
    """
    module = sys.modules.get(package)  # the package itself, while its __init__ runs
    namespace = module.__dict__ if module is not None else None

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        if namespace is not None:
            namespace[name] = value  # imported once
        return value

    def __dir__() -> list[str]:
        return sorted({*(namespace or {}), *exports})

    return __getattr__, __dir__
