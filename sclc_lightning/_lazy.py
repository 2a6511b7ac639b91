"""Names imported when first used: :func:`lazy` gives a package the PEP 562 ``__getattr__`` that
imports a public name from its module on first use, so that importing the package loads nothing
heavy."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["lazy"]


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
