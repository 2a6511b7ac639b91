"""The public API: the package root exports what users import, each public name has a docstring
with an example and is on an API page, the API index lists exactly the root's ``__all__``, and
old import paths still work with a DeprecationWarning naming the new one."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import sclc_lightning
import sclc_lightning.callbacks

ROOT = Path(__file__).parents[1]
API = ROOT / "docs" / "api"
PUBLIC = {
    **{name: sclc_lightning for name in sclc_lightning.__all__ if name != "__version__"},
    **{name: sclc_lightning.callbacks for name in sclc_lightning.callbacks.__all__},
}


def _directives() -> list[tuple[str, list[str] | None]]:
    """Every ``::: target`` of the API pages, with its ``members: [...]`` option if any."""
    found = []
    for page in sorted(API.glob("*.md")):
        lines = page.read_text().splitlines()
        for index, line in enumerate(lines):
            if line.startswith("::: "):
                members = None
                for option in lines[index + 1 :]:
                    if not option.startswith(" "):
                        break  # the directive's options are indented below it
                    if option.strip().startswith("members: ["):
                        members = re.findall(r"\w+", option.split(":", 1)[1])
                found.append((line[4:].strip(), members))
    return found


def _documented() -> list[Any]:
    objects: list[Any] = []
    for target, members in _directives():
        try:
            module: ModuleType | None = importlib.import_module(target)
        except ImportError:
            module = None
        if module is None:
            path, _, name = target.rpartition(".")
            objects.append(getattr(importlib.import_module(path), name))
        else:
            names = members if members is not None else getattr(module, "__all__", [])
            objects.extend(getattr(module, name) for name in names)
    return objects


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_public_name_has_a_docstring_with_an_example(name: str) -> None:
    obj = getattr(PUBLIC[name], name)
    doc = inspect.getdoc(obj) or ""
    assert len(doc) > 40, f"{name} has no docstring"
    assert "Examples:" in doc and ">>>" in doc, f"{name}'s docstring has no example"


def test_each_public_name_is_on_an_api_page() -> None:
    documented = _documented()
    missing = [name for name, module in PUBLIC.items() if not any(getattr(module, name) is o for o in documented)]
    assert not missing, f"not on any page of docs/api: {missing}"


def test_the_api_index_lists_exactly_the_package_roots_names() -> None:
    text = (API / "index.md").read_text()
    table = text.split("| name | what it is | page |")[1].split("\n\n")[0]
    listed = re.findall(r"^\| `(\w+)` \|", table, flags=re.M)
    assert sorted(listed) == sorted(n for n in sclc_lightning.__all__ if n != "__version__")
    assert len(listed) == len(set(listed))


def test_the_package_root_imports_nothing_heavy_and_the_loop_no_sklearn() -> None:
    code = (
        "import sys, sclc_lightning\n"
        "print(sorted(m for m in ('torch', 'lightning', 'sklearn', 'matplotlib') if m in sys.modules))\n"
        "from sclc_lightning import SelfConsumingLoop, GenerationCSV\n"
        "print(sorted(m for m in ('sklearn', 'ot', 'kmedoids', 'mujoco') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "[]"]


def test_the_moved_paths_are_gone() -> None:
    """The paths that moved before the first release (``data/``, ``visuals``, ...) are removed,
    not forwarded (README, "Changes")."""
    for old in ("sclc_lightning.data", "sclc_lightning.generation_csv", "sclc_lightning.visuals"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(old)
