"""Tasks, suites, the plan of a bench (which method runs where, and why not), the card's reading
and the comparison of two cards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sclc_lightning.bench import BenchError, Task, compare, parse_method, plan_bench, read_card
from sclc_lightning.bench.compare import compare_text
from sclc_lightning.bench.tasks import TASKS, suite_tasks


def test_the_quick_and_standard_suites() -> None:
    names = [t.name for t in suite_tasks("quick")]
    assert names == [
        "gaussian_prop1", "sampling_bias", "linear_regression", "gmm_em", "eight_gaussians_ddpm", "two_moons_cfm",
        "lm_pretrain",
    ]  # fmt: skip
    for task in suite_tasks("quick"):  # every recipe is there, and the metric is one its runs log
        assert all(Path(p).is_file() for p in task.configs()) and task.digest().startswith("sha256:")
    standard = [t.name for t in suite_tasks("standard")]
    assert standard == [*names, "digits_kmeans", "vae", "conformers", "motion"]
    for task in suite_tasks("standard"):
        assert all(Path(p).is_file() for p in task.configs())
    assert not {t.name for t in suite_tasks("paper")} & set(standard)  # tests/bench/test_paper.py
    with pytest.raises(ValueError, match="No suite 'quik'"):
        suite_tasks("quik")
    with pytest.raises(ValueError, match="has no task"):
        suite_tasks("quick", ["gaussian"])
    with pytest.raises(ValueError, match="`direction` must be"):
        Task("t", ("r.yaml",), "m", "down", 1, "")  # type: ignore[arg-type]


def test_a_tasks_digest_follows_its_recipe_and_definition(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("loop:\n  generations: 5\n")
    task = Task("t", (str(recipe),), "w2", "lower", 5, "a claim")
    first = task.digest()
    assert Task("t", (str(recipe),), "w2", "lower", 4, "a claim").digest() != first
    assert Task("t", (str(recipe),), "sigma", "lower", 5, "another claim").digest() != first
    recipe.write_text("loop:\n  generations: 6\n")
    assert task.digest() != first
    with pytest.raises(FileNotFoundError, match=r"recipe .*missing"):
        Task("t", ("nowhere.yaml",), "w2", "lower", 5, "").digest(tmp_path)


def test_the_plan_skips_a_method_where_it_cannot_apply_and_says_why() -> None:
    plan = plan_bench("quick", {"mine": {"corrector": "identity", "needs": ["tokens"]}}, "0-1", builtin=True)
    assert list(plan.methods)[:2] == ["real_only", "uncorrected"]
    skipped = plan.skipped
    assert "needs unconditional|labels" in skipped["linear_regression"]["ot_1"]
    assert "needs continuous" in skipped["lm_pretrain"]["kmeans"]
    assert "needs log_prob" in skipped["two_moons_cfm"]["verify_likelihood"]
    # optimal transport and KMeans match within a class label, not within a continuous condition
    labelled = plan_bench("standard", None, "0-1", builtin=True, tasks=["digits_kmeans", "conformers"]).skipped
    assert "kmeans" not in labelled["digits_kmeans"] and "needs unconditional|labels" in labelled["conformers"]["ot_1"]
    assert "'neon'" in skipped["gaussian_prop1"]["neon"] and "neon" not in skipped["sampling_bias"]
    assert "needs tokens" in skipped["gaussian_prop1"]["mine"] and "mine" not in skipped["lm_pretrain"]
    assert not skipped["gaussian_prop1"].keys() & {"real_only", "uncorrected", "accumulate", "fresh"}
    # a task's part is merged into the method's settings there
    arms = plan.arms(TASKS["gmm_em"])
    assert arms["kmeans"].settings_for("gmm_em") == {"corrector": "kmeans", "corrector_kwargs": {"num_clusters": 16}}
    assert arms["fresh"].settings_for("gmm_em")["mode_kwargs"] == {"real_per_generation": 500}
    for bad, said in [
        ({"uncorrected": {}}, "is a reference arm"),
        ({"accumulate": {"mode": "accumulate"}}, "built-in method already added"),
    ]:
        with pytest.raises(BenchError, match=said):
            plan_bench("quick", bad, "0-1", builtin=["accumulate"])
    with pytest.raises(BenchError, match="No built-in method 'acumulate'"):
        plan_bench("quick", None, "0-1", builtin=["acumulate"])
    with pytest.raises(ValueError, match="at least 2 seeds"):
        plan_bench("quick", None, "3")
    with pytest.raises(ValueError, match="`needs` must be a list"):
        parse_method("m", {"corrector": "identity", "needs": "tokens"})


def _card(digest: str, values: dict[str, list[float]], seeds: list[int]) -> dict[str, Any]:
    methods = {name: {"status": "ok", "values": v, "score": None} for name, v in values.items()}
    task = {"digest": digest, "metric": "w2", "direction": "lower", "methods": methods}
    return {"format": 1, "seeds": seeds, "tasks": {"t": task}}


def test_compare_pairs_the_seeds_and_refuses_other_definitions(tmp_path: Path) -> None:
    first = _card("sha256:a", {"m": [1.0, 2.0, 3.0]}, [0, 1, 2])
    second = _card("sha256:a", {"m": [0.5, 1.4, 2.6]}, [0, 1, 2])
    result = compare(first, second)
    entry = result["tasks"]["t"]["methods"]["m"]
    assert entry["difference"] == pytest.approx(-0.5)  # (−0.5, −0.6, −0.4): paired, a narrow interval
    assert entry["interval"][0] == pytest.approx(-0.5 - 4.303 * 0.1 / 3**0.5, abs=1e-3)
    assert "m: -0.5" in compare_text(result) and entry["same_definition"] is True
    # the same name with other settings (or another corrector's code) is compared, and said to differ
    redefined = {**second, "methods": {"m": {"settings": {"corrector": "identity"}}}}
    other = compare({**first, "methods": {"m": {"settings": {}}}}, redefined)
    assert other["tasks"]["t"]["methods"]["m"]["same_definition"] is False
    assert "m: -0.5" in compare_text(other) and "(the cards define it differently)" in compare_text(other)
    apart = compare(first, _card("sha256:b", {"m": [1.0, 2.0, 3.0]}, [0, 1, 2]))
    assert not apart["tasks"] and "another definition" in apart["not_comparable"]["t"]
    # the seeds both cards ran are paired; fewer than 2 in common: nothing to pair
    shared = compare(first, _card("sha256:a", {"m": [2.0, 3.5, 9.0]}, [0, 1, 7]))["tasks"]["t"]
    assert shared["seeds"] == [0, 1] and shared["methods"]["m"]["difference"] == pytest.approx(1.25)
    assert "fewer than 2 seeds" in compare(first, _card("sha256:a", {"m": [1.0, 2.0]}, [0, 5]))["not_comparable"]["t"]
    with pytest.raises(ValueError, match=r"t/m has .* not one value per seed"):
        compare(first, _card("sha256:a", {"m": [1.0]}, [0, 1, 2]))
    with pytest.raises(ValueError, match="not a finite number"):
        compare(first, _card("sha256:a", {"m": [1.0, float("nan"), 2.0]}, [0, 1, 2]))
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({**first, "format": 9}))
    with pytest.raises(ValueError, match="format 9"):
        read_card(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="cannot be read as a bench card"):
        read_card(tmp_path)


def test_the_committed_leaderboard_is_the_bench_its_command_runs_today() -> None:
    """docs/bench.md's card must be what `sclc bench run --suite quick --builtin --seeds 0-4` defines
    now: a changed recipe, metric or built-in method needs a new leaderboard."""
    root = Path(__file__).parents[2]
    card = read_card(root / "docs" / "bench_quick.json")
    plan = plan_bench("quick", None, "0-4", builtin=True)
    assert card["seeds"] == [0, 1, 2, 3, 4] and card["suite"] == "quick"
    assert {name: entry["digest"] for name, entry in card["tasks"].items()} == plan.spec()["tasks"]
    assert card["methods"] == plan.spec()["methods"]
    assert "sclc bench run --suite quick --builtin --seeds 0-4" in (root / "docs" / "bench.md").read_text()


def test_the_python_api_refuses_bad_arguments_before_writing_anything(tmp_path: Path) -> None:
    from sclc_lightning.bench import run

    out = tmp_path / "bench"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"seeds": [0, 0]}, "names a seed twice"),
        ({"seeds": ["0", "1"]}, "list of integers >= 0"),
        ({"seeds": [-1, 2]}, "list of integers >= 0"),
        ({"tasks": "gaussian_prop1"}, "`tasks` must be a list"),
        ({"tasks": []}, "`tasks` is empty"),
        ({"builtin": "accumulate"}, "`builtin` must be True, False or a list"),
        ({"methods": ["x"]}, "`methods` must map names"),
        ({"jobs": 0}, "`jobs` must be an integer >= 1"),
        ({"jobs": "2"}, "`jobs` must be an integer >= 1"),
        ({"figures": "no"}, "`figures` must be True or False"),
        ({"methods": {"m": {"corrector": "identity", "per_task": {"gmm_emm": {}}}}}, "did you mean 'gmm_em'"),
    ]
    for given, said in cases:
        arguments: dict[str, Any] = {"seeds": "0-1", "tasks": ["gaussian_prop1"], "out": out, **given}
        with pytest.raises((BenchError, ValueError), match=said):
            run("quick", arguments.pop("methods", None), arguments.pop("seeds"), **arguments)
    assert not out.exists()
    (tmp_path / "a_file").write_text("")
    for bad in (tmp_path / "a_file", tmp_path / "a_file" / "sub"):
        with pytest.raises(BenchError, match="is a file, not a folder"):
            run("quick", None, "0-1", out=bad, tasks=["gaussian_prop1"])


def test_a_script_without_the_main_guard_is_told_and_writes_no_card(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "no_guard.py"
    script.write_text(
        "from sclc_lightning import bench\n"
        "bench.run('quick', None, '0-1', out='out', tasks=['gaussian_prop1'], jobs=1, figures=False)\n"
    )
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert 'Put the call under `if __name__ == "__main__":`' in done.stderr  # said by the worker
    assert "did not run" in done.stderr and "No card is written" in done.stderr  # and by the bench
    assert not (tmp_path / "out" / "bench.json").exists()
