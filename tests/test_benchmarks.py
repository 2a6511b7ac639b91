"""The recipe-cost benchmark script: its cut-down configuration and its projection."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]


def _load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("recipe_cost", ROOT / "benchmarks" / "recipe_cost.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_timed_config_keeps_the_recipe_but_cuts_the_budget(tmp_path: Path) -> None:
    script = _load_script()
    config = yaml.safe_load((ROOT / "recipes" / "cifar10_ddpm.yaml").read_text())
    args = type("Args", (), {"steps": 3, "samples": 10, "generations": 2, "batch_size": 16})()
    timed = script.timed_config("cifar10_ddpm", config, args, tmp_path)
    assert timed["model"] == config["model"]  # the paper-size model, untouched
    assert timed["data"]["class_path"].endswith("ImageFolderDataModule")
    assert len(list((tmp_path / "images").glob("*.png"))) == 32  # 2 batches of stand-in images
    loop = timed["loop"]
    assert loop["initial_images"] == loop["images_per_generation"] == 48 and loop["generations"] == 2
    assert math.floor(loop["synthetic_fraction"] * 32) == 10  # exactly --samples synthetic points
    kept = [c["class_path"].split(".")[-1] for c in timed["trainer"]["callbacks"]]
    assert "ImageMetrics" not in kept and "SampleFigures" not in kept
    assert config["loop"]["initial_images"] == 51_200_000  # the recipe itself is not modified


@pytest.mark.slow  # 13 s; by default test_timed_config_keeps_the_recipe_but_cuts_the_budget
def test_mnist_recipe_cost_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _load_script()
    out = tmp_path / "cost"
    argv = ["recipe_cost.py", "--recipe", "mnist_ddpm", "--steps", "1", "--samples", "2"]
    argv += ["--generations", "1", "--batch-size", "8", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    script.main()
    (result,) = json.loads((out / "results.json").read_text())["results"]
    recipe = yaml.safe_load((ROOT / "recipes" / "mnist_ddpm.yaml").read_text())
    assert result["recipe"] == "mnist_ddpm" and result["batch"] == 128 and result["timed_batch"] == 8
    assert result["n"] == 4000 and result["synthetic_per_generation"] == 2000  # floor(0.5 * 4000)
    assert result["step_s"] > 0 and result["sample_s"] > 0
    steps0 = recipe["loop"]["initial_images"] / 128
    assert math.isclose(result["generation0_h"], steps0 * result["step_s"] / 3600)
    later = recipe["loop"]["images_per_generation"] / 128 * result["step_s"]
    later += 2000 * (result["sample_s"] + result["correct_s"])
    assert math.isclose(result["later_generation_h"], later / 3600)
    evaluation = 1000 * result["sample_s"]  # ImageMetrics(num_samples=1000)
    assert math.isclose(result["total_h"], (steps0 * result["step_s"] + 20 * later + 21 * evaluation) / 3600)


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")))
def test_benchmark_scripts_import_existing_names(script: str) -> None:
    """A refactoring of the package must not leave a benchmark importing a name that moved."""
    import ast
    import importlib

    tree = ast.parse((ROOT / "benchmarks" / script).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sclc_lightning"):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                submodule = hasattr(module, "__path__") and importlib.util.find_spec(f"{node.module}.{alias.name}")
                found = hasattr(module, alias.name) or submodule
                assert found, f"{script}: {node.module} has no {alias.name}"


def test_the_rank_split_benchmark_times_names_that_exist() -> None:
    """benchmarks/rank_split.py wraps the loop's steps by name: a renamed step must fail here."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("rank_split", ROOT / "benchmarks" / "rank_split.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, attribute, _ in module.TIMED:
        owner, last = module.resolve(name, attribute)
        assert callable(getattr(owner, last)), (name, attribute)
    with pytest.raises(AttributeError):
        module.resolve("sclc_lightning.loop.exchange", "Exchange.no_such_step")
