"""The Gaussian recipes run through `sclc fit` in-process and show what they reproduce."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import yaml

from sclc_lightning.cli import main

RECIPES = Path(__file__).parents[2] / "recipes"


def run(tmp_path: Path, recipe: str, name: str, *overrides: str) -> list[dict[str, float]]:
    run_dir = tmp_path / name
    assert main(["fit", "--config", str(RECIPES / f"{recipe}.yaml"), "--run_dir", str(run_dir), *overrides]) == 0
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]


def sigma_at(rows: list[dict[str, float]], generation: int) -> float:
    return next(r["sigma"] for r in rows if r["generation"] == generation)


def test_collapse_recipe_shrinks_sigma_and_baseline_does_not(tmp_path: Path) -> None:
    collapse = run(tmp_path, "gaussian_collapse", "collapse", "--loop.generations", "30")
    baseline = run(
        tmp_path,
        "gaussian_collapse",
        "base",
        "--loop.generations",
        "30",
        "--loop.synthetic_fraction",
        "0",
        "--loop.mode",
        "augment",
    )
    assert [int(r["generation"]) for r in collapse] == list(range(31))
    assert [r["num_synthetic"] for r in collapse[1:]] == [10.0] * 30 and collapse[1]["num_real"] == 0
    # the baseline refits the same real points: sigma does not move
    assert all(math.isclose(r["sigma"], baseline[0]["sigma"], rel_tol=1e-5) for r in baseline)
    # expected shrink alpha(10)^30 = 0.44; the seeded run goes below 0.6 of its start
    assert sigma_at(collapse, 30) < 0.6 * sigma_at(collapse, 0)
    assert collapse[-1]["w2"] > baseline[-1]["w2"]


def test_run_directory_holds_config_checkpoints_and_manifest(tmp_path: Path) -> None:
    run(tmp_path, "gaussian_collapse", "r", "--loop.generations", "2")
    run_dir = tmp_path / "r"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["loop"]["generations"] == 2 and config["run_dir"] == str(run_dir)
    assert config["loop"]["output_dir"] == str(run_dir / "synthetic")
    assert (run_dir / "synthetic" / "manifest.json").exists()
    assert list(run_dir.rglob("*.ckpt"))


def test_accumulate_resists_collapse_better_than_replace(tmp_path: Path) -> None:
    finals = {"accumulate": [], "replace": []}
    for mode in finals:
        for seed in range(3):
            rows = run(
                tmp_path,
                "gaussian_accumulate",
                f"{mode}{seed}",
                "--loop.mode",
                mode,
                "--loop.seed",
                str(seed),
                "--data.init_args.seed",
                str(seed),
            )
            finals[mode].append(sigma_at(rows, 50) / sigma_at(rows, 0))
    assert sum(finals["accumulate"]) / 3 > 0.7 > sum(finals["replace"]) / 3


@pytest.mark.parametrize("strength", ["0.0", "5.0"])
def test_gaussian_toy_recipe_runs_the_paper_setting(tmp_path: Path, strength: str) -> None:
    rows = run(
        tmp_path,
        "gaussian_toy",
        f"g{strength}",
        "--loop.generations",
        "20",
        "--loop.corrector_kwargs.strength",
        strength,
    )
    assert [r["num_synthetic"] for r in rows[1:4]] == [25.0, 50.0, 75.0]  # accumulate, floor(0.5 * 50) each
    assert all(r["w2"] >= 0 for r in rows)


def test_gaussian_toy_draws_its_targets_from_n01_by_default_and_from_the_real_points_in_its_layer(
    tmp_path: Path,
) -> None:
    """Gillman et al. §5 draws the OT targets fresh from the target N(0, I); the real-points
    variant is the layer recipes/gaussian_toy_real_targets.yaml."""
    import json

    run(tmp_path, "gaussian_toy", "paper", "--loop.generations", "1")
    layer = str(RECIPES / "gaussian_toy_real_targets.yaml")
    run(tmp_path, "gaussian_toy", "real", "--config", layer, "--loop.generations", "1")
    samplers = {}
    for name in ("paper", "real"):
        manifest = json.loads((tmp_path / name / "synthetic" / "manifest.json").read_text())
        samplers[name] = manifest["config"]["corrector"]["target_sampler"]
    from sclc_lightning._callables import code_identity
    from sclc_lightning.datasets.toy import standard_normal_2d

    # recorded by what the function does, not its name alone
    assert samplers == {"paper": code_identity(standard_normal_2d), "real": None}
    assert samplers["paper"].startswith("sclc_lightning.datasets.toy:standard_normal_2d#code:")


def test_resume_through_the_cli_extends_a_run(tmp_path: Path) -> None:
    first = run(tmp_path, "gaussian_collapse", "r", "--loop.generations", "3")
    run_dir = tmp_path / "r"
    checkpoint = next((run_dir / "logs" / "version_0" / "checkpoints").glob("*.ckpt"))
    assert (
        main(
            [
                "fit",
                "--config",
                str(run_dir / "config.yaml"),
                "--run_dir",
                str(run_dir),
                "--loop.generations",
                "6",
                "--ckpt_path",
                str(checkpoint),
            ]
        )
        == 0
    )
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
    assert [int(r["generation"]) for r in rows] == list(range(7))
    assert rows[:4] == first  # the first run's rows are kept, generations 4-6 appended


def test_gaussian_data_with_full_covariance_and_w2_against_it(tmp_path: Path) -> None:
    rows = run(
        tmp_path,
        "gaussian_collapse",
        "c",
        "--loop.generations",
        "1",
        "--loop.synthetic_fraction",
        "0",
        "--loop.mode",
        "augment",
        "--data.init_args.n",
        "4000",
        "--data.init_args.mean",
        "[3.0, -1.0]",
        "--data.init_args.cov",
        "[[4.0, 1.0], [1.0, 1.0]]",
    )
    # fitted on 4,000 points of N((3, -1), [[4, 1], [1, 1]]): w2 is measured against that distribution
    assert rows[0]["w2"] < 0.15 and abs(rows[0]["sigma"] - 1.5) < 0.1


def test_point_data_follow_the_run_seed_when_their_seed_is_none() -> None:
    import lightning.pytorch as pl

    from sclc_lightning.datasets.toy import GaussianDataModule

    def points(run_seed: int, **kwargs: object) -> object:
        pl.seed_everything(run_seed, verbose=False)
        data = GaussianDataModule(n=5, **kwargs)  # type: ignore[arg-type]
        data.setup("fit")
        return data.train_points

    import torch

    assert torch.equal(points(3, seed=None), points(3, seed=None))
    assert not torch.equal(points(3, seed=None), points(4, seed=None))  # seeds average over datasets
    assert torch.equal(points(3, seed=7), points(4, seed=7))  # a fixed data seed ignores the run's
    for recipe in ("gaussian_toy", "gaussian_collapse", "gaussian_accumulate"):
        assert yaml.safe_load((RECIPES / f"{recipe}.yaml").read_text())["data"]["init_args"]["seed"] is None
