"""Every recipe parses with `sclc fit --print_config`: alone, or layered on the base recipe its
header names (``--config recipes/<base>.yaml --config recipes/<this>.yaml``). A class path that
moved (a callback now imported from ``sclc_lightning.callbacks``) fails here, not in a user's run."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from sclc_lightning.cli import main

ROOT = Path(__file__).parents[2]
RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))


def _layers(recipe: Path) -> list[str]:
    """The configs to parse: the base the recipe's header names before it, then the recipe (a
    bench layer: its task's files)."""
    relative = recipe.relative_to(ROOT).as_posix()
    if "bench" in recipe.relative_to(ROOT / "recipes").parts[:1]:  # a bench layer: the files of its task
        from sclc_lightning.bench.tasks import TASKS

        layer = recipe.relative_to(ROOT / "recipes").as_posix()
        return next(t.configs() for t in TASKS.values() if layer in t.recipe)
    header = recipe.read_text().split("\n\n", 1)[0]
    found = re.search(rf"--config (recipes/[\w/]+\.yaml)\s+(?:\\\s*)?(?:#\s*)?--config {re.escape(relative)}", header)
    return [str(ROOT / found.group(1)), str(recipe)] if found else [str(recipe)]


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.relative_to(ROOT / "recipes").as_posix() for r in RECIPES])
def test_the_recipe_parses(recipe: Path) -> None:
    arguments = ["fit"]
    for layer in _layers(recipe):
        arguments += ["--config", layer]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), pytest.raises(SystemExit) as ended:
        main([*arguments, "--print_config"])
    assert ended.value.code in (0, None), out.getvalue()[-2000:]
    assert "class_path: sclc_lightning" in out.getvalue() or "SelfConsumingLoop" in out.getvalue()
