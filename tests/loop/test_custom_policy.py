"""A mixing policy defined and registered here, in a test module, runs through the loop and
through `sclc fit` YAML like the built-in ones."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml
from helpers import GaussianModel, gaussian_points, loader, trainer

from sclc_lightning import GenerationPlan, MixingPolicy, SelfConsumingLoop, register_mixing_policy
from sclc_lightning.cli import main


@register_mixing_policy("test_latest_window")
class LatestWindow(MixingPolicy):
    """All real items and the latest ``window`` synthetic sets."""

    def __init__(self, window: int = 1) -> None:
        if window < 1:
            raise ValueError(f"`window` must be >= 1, got {window}.")
        self.window = window

    def plan(self, generation: int, real_size: int, synthetic_counts: Mapping[int, int], seed: int) -> GenerationPlan:
        first = max(1, generation - self.window + 1)
        sets = tuple((g, None) for g in range(first, generation + 1) if synthetic_counts.get(g, 0) > 0)
        return GenerationPlan(generation, True, None, sets)


def test_custom_policy_runs_through_the_loop(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(
        0.5,
        4,
        images_per_generation=None,
        mode="test_latest_window",
        mode_kwargs={"window": 2},
        output_dir=tmp_path / "s",
    )
    trainer(tmp_path, [loop]).fit(GaussianModel(), train_dataloaders=loader(gaussian_points(20)))
    # 10 synthetic points per generation; the window holds at most the latest two sets
    assert [(r.num_real, r.num_synthetic) for r in loop.history] == [(20, 0), (20, 10), (20, 20), (20, 20), (20, 20)]
    assert loop.fingerprint()["mode"] == "test_latest_window"
    assert loop.fingerprint()["mode_settings"] == {"window": 2}
    with pytest.raises(ValueError, match=r"`mode_kwargs` has 'max_synthetic', which the mixing policy"):
        SelfConsumingLoop(0.5, 1, mode="test_latest_window", mode_kwargs={"max_synthetic": 3})


def _recipe(tmp_path: Path, mode: object, mode_kwargs: dict[str, int] | None) -> Path:
    config = {
        "seed_everything": 0,
        "model": {"class_path": "sclc_lightning.models.GaussianModel", "init_args": {"dim": 2}},
        "data": {
            "class_path": "sclc_lightning.datasets.toy.GaussianDataModule",
            "init_args": {"n": 20, "dim": 2, "batch_size": 10},
        },
        "loop": {
            "synthetic_fraction": 0.5,
            "generations": 3,
            "images_per_generation": None,
            "mode": mode,
            "mode_kwargs": mode_kwargs,
        },
        "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False, "enable_model_summary": False},
        "wandb": False,
    }
    path = tmp_path / "window.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("mode", "mode_kwargs"),
    [
        ("test_latest_window", {"window": 2}),  # a registered name, its settings in mode_kwargs
        ({"class_path": f"{LatestWindow.__module__}.LatestWindow", "init_args": {"window": 2}}, None),
    ],
)
def test_custom_policy_runs_through_sclc_fit_yaml(tmp_path: Path, mode: object, mode_kwargs: object) -> None:
    run_dir = tmp_path / "run"
    assert main(["fit", "--config", str(_recipe(tmp_path, mode, mode_kwargs)), "--run_dir", str(run_dir)]) == 0
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["num_synthetic"]) for r in rows] == [0.0, 10.0, 20.0, 20.0]
    manifest = json.loads((run_dir / "synthetic" / "manifest.json").read_text())
    assert manifest["config"]["mode"] == "test_latest_window"
    assert manifest["config"]["mode_settings"] == {"window": 2}
    assert [g["mode"] for g in manifest["generations"]] == ["test_latest_window"] * 3
