"""The public API: the package root exports what users import, each public name has a docstring
with an example and is on an API page, the API index lists exactly the root's ``__all__``, and
old import paths still work with a DeprecationWarning naming the new one."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import warnings
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


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("sclc_lightning.data", "sclc_lightning.items", "RealData"),
        ("sclc_lightning.data", "sclc_lightning.store", "SyntheticStore"),
        ("sclc_lightning.data", "sclc_lightning.mixing", "AccumulatePolicy"),
        ("sclc_lightning.data.budget", "sclc_lightning.seeding", "derive_seed"),
        ("sclc_lightning.data.budget", "sclc_lightning.mixing.budget", "num_synthetic"),
        ("sclc_lightning.data.toy", "sclc_lightning.datasets.toy", "GaussianDataModule"),
        ("sclc_lightning.data.store", "sclc_lightning.store.synthetic", "SyntheticStore"),
        ("sclc_lightning.data.manifest", "sclc_lightning.store.manifest", "Manifest"),
        ("sclc_lightning.data.items", "sclc_lightning.items.codec", "ItemCodec"),
        ("sclc_lightning.data.contract", "sclc_lightning.items.contract", "ItemContractError"),
        ("sclc_lightning.data.policies", "sclc_lightning.mixing.policies", "ReplacePolicy"),
        ("sclc_lightning.data.images", "sclc_lightning.datasets.images", "DigitsDataModule"),
        ("sclc_lightning.generation_csv", "sclc_lightning.callbacks.generation_csv", "GenerationCSV"),
        ("sclc_lightning.visuals", "sclc_lightning.callbacks.figures", "SampleFigures"),
        ("sclc_lightning.metrics._evaluator", "sclc_lightning.metrics.evaluator", "GenerationEvaluator"),
        ("sclc_lightning.loop.seeding", "sclc_lightning.seeding", "forked_rng"),
    ],
)
def test_old_paths_still_import_with_a_deprecation_warning(old: str, new: str, name: str) -> None:
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert any(f"{old} moved to" in m and new in m for m in messages), messages
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError, match=f"module '{old}'"):
        module.no_such_name  # noqa: B018


def test_a_run_directory_config_written_before_the_data_split_still_runs(tmp_path: Path) -> None:
    """``config.yaml`` of a run made by the version before ``data/`` was split (class paths
    ``sclc_lightning.data.toy…`` and ``sclc_lightning.visuals…``), as that version wrote it."""
    from sclc_lightning.cli import main

    text = (ROOT / "tests" / "fixtures" / "config_before_the_data_split.yaml").read_text()
    assert "sclc_lightning.data.toy.EightGaussiansDataModule" in text and "sclc_lightning.visuals" in text
    config = tmp_path / "config.yaml"
    config.write_text(text.replace("/tmp/oldrun", str(tmp_path / "run")))
    for old in ("sclc_lightning.data.toy", "sclc_lightning.visuals"):
        sys.modules.pop(old, None)  # imported again, as in a new process
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["fit", "--config", str(config), "--trainer.logger", "false"]) == 0
    moved = {str(w.message).split(" moved")[0] for w in caught if issubclass(w.category, DeprecationWarning)}
    assert {"sclc_lightning.data.toy", "sclc_lightning.visuals"} <= moved
    assert (tmp_path / "run" / "samples" / "generation_0001.png").is_file()
    assert (tmp_path / "run" / "synthetic" / "manifest.json").is_file()
