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
    """The configs to parse: the base the recipe's header names before it (a bench layer's is the
    recipe of its name), then the recipe."""
    relative = recipe.relative_to(ROOT).as_posix()
    if recipe.parent.name == "bench":  # the bench's layers size the recipe of the same name
        return [str(ROOT / "recipes" / recipe.name), str(recipe)]
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
