"""The docs' settings tables of the built-in correctors, model correctors, mixing policies and
callbacks, generated from each class's declaration (:func:`~sclc_lightning._settings.setting_rows`:
the signature's types and defaults, ``deciding``/``operational``, ``ranges`` and the docstring's
``Args:``). ``python scripts/settings_table.py`` writes them between their markers;
``tests/test_settings_tables.py`` fails when a page differs, or when an argument lacks its
documentation or its role. The registries and ``sclc_lightning.callbacks.__all__`` are read, so a
new built-in gets its table without anyone editing a list. Callbacks have no role column: they do
not change the synthetic data."""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from sclc_lightning._settings import SettingRow, setting_rows

__all__ = ["KINDS", "Kind", "builtin_classes", "markdown", "markdown_table", "section", "write_sections"]


@dataclasses.dataclass(frozen=True)
class Kind:
    """One extension point whose built-ins get settings tables.

    Attributes:
        title: what one of them is called ("corrector").
        page: the docs page, relative to ``docs/``.
        names: the registry's names (``available_correctors``).
        get: the class registered as a name.
        fixed_roles: roles the base class fixes (a corrector's ``strength`` is γ).
        roles: whether its settings have roles (deciding, operational); a callback's have none.
    """

    title: str
    page: str
    names: Callable[[], list[str]]
    get: Callable[[str], type]
    fixed_roles: Mapping[str, str] = dataclasses.field(default_factory=dict)
    roles: bool = True

    @property
    def start(self) -> str:
        return f"<!-- {self.title} settings: python scripts/settings_table.py -->\n"

    @property
    def end(self) -> str:
        return f"<!-- end of the {self.title} settings -->\n"


def _correctors() -> Kind:
    from sclc_lightning.correctors.base import available_correctors, get_corrector_class

    return Kind("corrector", "correctors.md", available_correctors, get_corrector_class, {"strength": "γ"})


def _model_correctors() -> Kind:
    from sclc_lightning.correctors.model import available_model_correctors, get_model_corrector_class

    return Kind("model corrector", "model_correction.md", available_model_correctors, get_model_corrector_class)


def _policies() -> Kind:
    from sclc_lightning.mixing.policies import available_mixing_policies, get_mixing_policy_class

    return Kind("mixing policy", "loop.md", available_mixing_policies, get_mixing_policy_class)


def _callback_names() -> list[str]:
    import sclc_lightning.callbacks

    # the loop's own settings table is sclc_lightning.loop.settings's, in docs/loop.md
    return [name for name in sclc_lightning.callbacks.__all__ if name != "SelfConsumingLoop"]


def _callback(name: str) -> type:
    import sclc_lightning.callbacks

    return getattr(sclc_lightning.callbacks, name)  # type: ignore[no-any-return]


def _callbacks() -> Kind:
    return Kind("callback", "metrics.md", _callback_names, _callback, roles=False)


#: The extension points, built when asked for (their registries import this package's modules).
KINDS: tuple[Callable[[], Kind], ...] = (_correctors, _model_correctors, _policies, _callbacks)


def builtin_classes(kind: Kind) -> list[tuple[str, type]]:
    """The registered names whose class is a built-in: defined at the top of one of the package's
    modules (a class a user, a test or a docstring example registers is left out)."""
    found = []
    for name in kind.names():
        cls = kind.get(name)
        module = sys.modules.get(cls.__module__)
        if cls.__module__.startswith("sclc_lightning.") and getattr(module, cls.__qualname__, None) is cls:
            found.append((name, cls))
    return found


_TEX = {
    r"\gamma": "γ",
    r"\beta": "β",
    r"\lambda": "λ",
    r"\theta": "θ",
    r"\pi": "π",
    r"\ge": "≥",
    r"\le": "≤",
    r"\in": "∈",
    r"\infty": "∞",
    r"\lfloor": "⌊",
    r"\rfloor": "⌋",
    r"\lceil": "⌈",
    r"\rceil": "⌉",
    r"\cdot": "·",
}


def _math(match: re.Match[str]) -> str:
    text = match.group(1)
    for command in sorted(_TEX, key=len, reverse=True):
        text = text.replace(command, _TEX[command])
    return text.replace("{", "").replace("}", "").replace("\\", "")


def markdown(text: str) -> str:
    """reStructuredText of a docstring as Markdown for a table cell: ``code`` in backticks,
    :math:`\\gamma` as γ, a cross-reference as its name, pipes escaped.

    Examples:
        >>> markdown(r"``0`` keeps all; :math:`\\gamma \\ge 0` (:mod:`~sclc_lightning.correctors.scores`)")
        '`0` keeps all; γ ≥ 0 (`scores`)'
    """
    text = re.sub(r":math:`([^`]*)`", _math, text)
    text = re.sub(r":\w+:`~[\w.]*?(\w+)`", r"`\1`", text)
    text = re.sub(r":\w+:`([^`]*)`", r"`\1`", text)
    text = re.sub(r"``([^`]*)``", r"`\1`", text)
    return text.replace("|", "\\|")


def _cells(row: SettingRow, roles: bool) -> list[str]:
    kinds = " or ".join(f"`{arm}`" for arm in row.annotation.split(" | ")) if row.annotation else ""
    default = "required" if row.default is inspect.Parameter.empty else f"`{row.default!r}`"
    role = [row.role or ""] if roles else []
    return [f"`{row.name}`", kinds, default, *role, row.range, markdown(row.doc)]


def markdown_table(cls: type, fixed_roles: Mapping[str, str] | None = None, roles: bool = True) -> str:
    """The settings table of ``cls``: one row per constructor argument (``roles=False``: without
    the role column)."""
    rows = setting_rows(cls, fixed_roles, roles=roles)
    if not rows:
        return "No settings.\n"
    columns = ["argument", "type", "default", *(["role"] if roles else []), "range", "meaning"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cells(row, roles)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def section(kind: Kind) -> str:
    """What goes between ``kind``'s markers: each built-in's heading and table, by name (the class
    named once where the name is the class's)."""
    parts = [
        f"#### `{name}`{'' if name == cls.__name__ else f' (`{cls.__name__}`)'}\n\n"
        f"{markdown_table(cls, kind.fixed_roles, kind.roles)}"
        for name, cls in builtin_classes(kind)
    ]
    return "\n".join(parts)


def write_sections(docs: Path) -> list[str]:
    """Write every kind's :func:`section` between its markers in its page under ``docs``; the
    pages that changed."""
    changed = []
    for make in KINDS:
        kind = make()
        page = docs / kind.page
        text = page.read_text(encoding="utf-8")
        head, rest = text.split(kind.start, 1)
        _, tail = rest.split(kind.end, 1)
        new = head + kind.start + section(kind) + kind.end + tail
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed.append(kind.page)
    return changed
