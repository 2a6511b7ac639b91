import csv
from pathlib import Path

import pytest

from sclc_lightning.cli import main
from sclc_lightning.grid import expand_grid, gpu_slots, parse_seeds

RECIPE = str(Path(__file__).parents[2] / "recipes" / "gaussian_collapse.yaml")


def test_parse_seeds_and_expand() -> None:
    assert parse_seeds("0-3") == [0, 1, 2, 3] and parse_seeds("1,5") == [1, 5]
    with pytest.raises(ValueError, match="`--seeds` must look like"):
        parse_seeds("a-b")
    points = expand_grid(["loop.synthetic_fraction=0.1,0.5", "loop.corrector_kwargs.strength=0,1"], [0, 1, 2])
    assert len(points) == 12 and len({p.name for p in points}) == 12
    first = points[0]
    assert first.fit_args(["r.yaml", "small/r.yaml"], Path("out/x")) == [
        "fit",
        "--config",
        "r.yaml",
        "--config",
        "small/r.yaml",
        "--run_dir",
        "out/x",
        "--loop.synthetic_fraction",
        "0.1",
        "--loop.corrector_kwargs.strength",
        "0",
        "--seed_everything",
        "0",
        "--loop.seed",
        "0",
    ]
    with pytest.raises(ValueError, match="`--set` must look like KEY=V1,V2"):
        expand_grid(["loop.mode"], None)


def test_dry_run_prints_one_fit_per_point(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert (
        main(
            [
                "grid",
                "--config",
                RECIPE,
                "--set",
                "loop.mode=augment,replace",
                "--seeds",
                "0-1",
                "--out",
                str(tmp_path),
                "--dry-run",
                "--",
                "--loop.generations",
                "3",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("sclc fit --config") for line in lines)
    assert all(line.endswith("--loop.generations 3") for line in lines)
    assert not any(tmp_path.iterdir())


def test_repeated_config_files_are_layered_as_sclc_fit_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`sclc grid --config recipe.yaml --config layer.yaml` used to keep only the last file (every
    point then failed for want of the recipe's required arguments)."""
    layer = tmp_path / "layer.yaml"
    layer.write_text("loop:\n  generations: 2\n  synthetic_fraction: 0.2\n")
    args = ["grid", "--config", RECIPE, "--config", str(layer), "--set", "loop.mode=augment,replace"]
    assert main([*args, "--out", str(tmp_path / "dry"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(f"--config {RECIPE} --config {layer} --run_dir" in line for line in lines)
    assert all(line.index("--loop.mode") > line.index(str(layer)) for line in lines)  # points override the files
    assert main([*args, "--out", str(tmp_path / "grid")]) == 0
    for mode in ("augment", "replace"):
        with open(tmp_path / "grid" / f"mode={mode}" / "metrics.csv") as handle:
            rows = list(csv.DictReader(handle))
        # the layer's settings: 2 generations, floor(0.2 * 10) = 2 synthetic points each
        assert [int(float(r["generation"])) for r in rows] == [0, 1, 2]
        assert [int(float(r["num_synthetic"])) for r in rows] == [0, 2, 2]
    # the grid records both files: the same command resumes it, another layer is refused
    assert main([*args, "--out", str(tmp_path / "grid")]) == 0
    with pytest.raises(SystemExit) as exit_code:
        main(["grid", "--config", RECIPE, "--set", "loop.mode=augment,replace", "--out", str(tmp_path / "grid")])
    assert exit_code.value.code == 2 and "holds another grid (config:" in capsys.readouterr().err


def test_grid_runs_in_parallel_and_survives_a_failing_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "grid",
            "--config",
            RECIPE,
            "--set",
            "loop.synthetic_fraction=0,1",
            "--set",
            "loop.mode=replace",
            "--seeds",
            "0-1",
            "--jobs",
            "2",
            "--out",
            str(tmp_path),
            "--",
            "--loop.generations",
            "4",
        ]
    )
    assert code == 1  # lambda = 0 in replace mode is refused: those runs fail, the others finish
    rows = list(csv.DictReader(open(tmp_path / "runs.csv")))
    status = {r["name"]: r["status"] for r in rows}
    assert status == {
        "synthetic_fraction=0_mode=replace_seed=0": "failed",
        "synthetic_fraction=0_mode=replace_seed=1": "failed",
        "synthetic_fraction=1_mode=replace_seed=0": "ok",
        "synthetic_fraction=1_mode=replace_seed=1": "ok",
    }
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["final_generation"] == "4" and r["final_num_synthetic"] == "10" for r in ok)
    assert ok[0]["final_sigma"] != ok[1]["final_sigma"]  # the seeds differ
    failed = next(r for r in rows if r["status"] == "failed")
    assert "must be > 0 in mode 'replace'" in failed["error"]
    assert "Traceback" in (Path(failed["run_dir"]) / "log.txt").read_text()
    # The console has one line per point; Lightning's own lines are in each point's log.txt.
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert lines[0].startswith("sclc grid: 4 points of") and lines[-2].startswith("sclc grid: 2 ok, 2 failed")
    points = lines[1:-2]
    assert len(points) == 4 and [p.split("]")[0] for p in points] == [f"  [{k}/4" for k in range(1, 5)]
    assert all("elapsed" in p for p in points) and "left" in points[0] and "left" not in points[-1]
    assert "GPU available" not in out.out + out.err
    assert "GPU available" in (Path(ok[0]["run_dir"]) / "log.txt").read_text()


def test_the_grid_console_shows_a_bar_over_points_on_a_terminal() -> None:
    import io

    from sclc_lightning.grid.running import PointProgress
    from sclc_lightning.grid.status import PointResult

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    console = Terminal()
    progress = PointProgress(3, stream=console)
    assert not progress.bar.disable
    progress.point_done(PointResult("seed=0", "ok", 1.5, ""))
    progress.close()
    assert "[1/3] seed=0: ok (1.5 s; 0:00:00 elapsed, ~0:00:00 left)" in console.getvalue()
    assert PointProgress(3, stream=io.StringIO()).bar.disable  # a log file gets the lines only


def test_workers_get_their_own_gpus(tmp_path: Path) -> None:
    assert gpu_slots(["0", "1", "2", "3", "4", "5", "6", "7"], 4) == ["0,1", "2,3", "4,5", "6,7"]
    assert gpu_slots(["2", "5"], 3) == ["2", "5", "2"] and gpu_slots([], 4) == []
    args = ["grid", "--config", RECIPE, "--set", "loop.synthetic_fraction=0.5,1", "--jobs", "2", "--gpus", "3,5"]
    assert main([*args, "--out", str(tmp_path), "--", "--loop.generations", "1"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "runs.csv")))
    # each run saw one worker's CUDA_VISIBLE_DEVICES (the recipe itself runs on the CPU)
    assert len(rows) == 2 and all(r["status"] == "ok" and r["gpus"] in ("3", "5") for r in rows)
    with pytest.raises(SystemExit):
        main(["grid", "--config", RECIPE, "--jobs", "2", "--gpus", "first", "--out", str(tmp_path / "bad")])


def test_seeds_say_when_the_datamodule_has_a_fixed_seed_of_its_own(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    recipes = Path(__file__).parents[2] / "recipes"
    grid = ["grid", "--seeds", "0-1", "--out", str(tmp_path), "--dry-run"]
    fixed = ["--config", str(recipes / "lm_pretrain.yaml"), "--", "--data.init_args.seed", "0"]
    assert main([*grid, *fixed]) == 0
    said = capsys.readouterr().err
    assert "warning: the DataModule GrammarTextDataModule has a fixed seed of its own (data.init_args.seed: 0)" in said
    # the Gaussian recipes' data follow the run's seed (seed: null): nothing to say
    assert main([*grid, "--config", str(recipes / "gaussian_collapse.yaml")]) == 0
    assert "fixed seed" not in capsys.readouterr().err
    # a seed given after `--` counts; null lets the data follow the run's seed
    assert main([*grid, "--config", str(recipes / "gaussian_collapse.yaml"), "--", "--data.init_args.seed", "4"]) == 0
    assert "(data.init_args.seed: 4)" in capsys.readouterr().err
    assert main([*grid, "--config", str(recipes / "lm_pretrain.yaml"), "--", "--data.init_args.seed=null"]) == 0
    assert "fixed seed" not in capsys.readouterr().err
    for recipe in sorted(recipes.glob("*.yaml")):  # no recipe fixes its data's seed any more
        assert main([*grid, "--config", str(recipe)]) == 0, recipe
        assert "fixed seed" not in capsys.readouterr().err, recipe
