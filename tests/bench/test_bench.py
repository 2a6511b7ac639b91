"""`sclc bench` end to end on the quick suite's Gaussian of Prop. 1 (about a second per point):
the reference arms, the exactness of the score at its ends, a harmful corrector, accumulate, a
rerun that gives the same card bit for bit, and a resumption that reruns nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sclc_lightning import bench
from sclc_lightning.bench.card import read_card

HARMFUL = "tests.bench.harmful:Shift"
METHODS = {
    "identity": {"corrector": "identity"},
    "harmful": {"corrector": HARMFUL, "corrector_kwargs": {"offset": 0.3}},
}


def _run(out: Path) -> dict[str, Any]:
    return bench.run(
        "quick", METHODS, "0-2", out=out, builtin=["accumulate"], tasks=["gaussian_prop1"], jobs=2, figures=True
    )


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench") / "first"
    return out, _run(out)


def test_the_scores_ends_are_exact_and_a_harmful_corrector_scores_below_zero(
    first: tuple[Path, dict[str, Any]],
) -> None:
    out, card = first
    task = card["tasks"]["gaussian_prop1"]
    assert task["collapse"] is True and task["metric"] == "w2" and task["generation"] == 50
    arms = task["methods"]
    assert all(arm["status"] == "ok" and len(arm["values"]) == 3 for arm in arms.values())
    # the identity corrector draws what the uncorrected loop draws: exactly 0; real data only: exactly 1
    assert arms["identity"]["values"] == arms["uncorrected"]["values"]
    assert arms["identity"]["score"] == 0.0 and arms["uncorrected"]["score"] == 0.0
    assert arms["real_only"]["score"] == 1.0
    # a corrector that moves every point by 0.3 drifts the mean by 15 in 50 generations
    assert arms["harmful"]["score"] < 0 and arms["harmful"]["score_interval"][1] < 0
    # Gerstgrasser et al.: accumulating keeps the fit near real data's (measured 0.88 [0.48, 0.94])
    assert arms["accumulate"]["score"] > 0.5 and arms["accumulate"]["score_interval"][0] > 0
    # the user's corrector is recorded by its import path and its code, in the runs
    manifest = next((out / "runs" / "gaussian_prop1").glob("method=harmful_seed=0/synthetic/manifest.json"))
    assert json.loads(manifest.read_text())["config"]["corrector"]["name"].startswith(HARMFUL + "#code:")
    assert read_card(out) == card and (out / "bench.html").is_file()
    assert (out / "figures" / "scores.png").is_file() and (out / "figures" / "gaussian_prop1.png").is_file()


def test_a_rerun_in_a_new_folder_gives_the_same_card_bit_for_bit(
    first: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, _ = first
    _run(tmp_path / "again")
    assert (tmp_path / "again" / "bench.json").read_bytes() == (out / "bench.json").read_bytes()


def test_a_point_whose_metrics_are_lost_is_failed_naming_it_and_the_fix(
    first: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(first[0], out)
    (out / "runs" / "gaussian_prop1" / "method=identity_seed=1" / "metrics.csv").write_text("generation,w2\n0,")
    card = _run(out)  # nothing reruns: the point finished; its metric cannot be read
    arm = card["tasks"]["gaussian_prop1"]["methods"]["identity"]
    assert arm["status"] == "failed" and arm["values"] is None and arm["score"] is None
    assert "runs/gaussian_prop1/method=identity_seed=1/metrics.csv has no finite 'w2' at generation 50" in arm["reason"]
    assert "remove the folder runs/gaussian_prop1/method=identity_seed=1" in arm["reason"]
    assert str(tmp_path) not in json.dumps(card)  # the card names no path of this machine
    shutil.rmtree(out / "runs" / "gaussian_prop1" / "method=identity_seed=1")
    assert (_run(out) and (out / "bench.json").read_bytes()) == (first[0] / "bench.json").read_bytes()


def test_a_rerun_in_the_same_folder_reruns_no_finished_point(
    first: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = first
    before = {p: p.read_bytes() for p in (out / "runs").glob("*/*/point.json")}
    card = (out / "bench.json").read_bytes()
    _run(out)
    assert "15 points" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in (out / "runs").glob("*/*/point.json")} == before
    assert (out / "bench.json").read_bytes() == card
    with pytest.raises(bench.BenchError, match="holds another bench"):
        bench.run("quick", METHODS, "0-3", out=out, tasks=["gaussian_prop1"])


_KILLED = """
import sys
from sclc_lightning import bench
from sclc_lightning.bench.tasks import TASKS, Task

if __name__ == "__main__":
    base = TASKS["gaussian_prop1"]
    # 400 generations: seconds a point, so that the bench is killed between points
    task = Task("slow_gaussian", (*base.recipe, sys.argv[2]), base.metric, base.direction, 400, base.claim, base.traits)
    bench.run("quick", {}, "0-2", out=sys.argv[1], tasks=[task], jobs=1, figures=False)
"""


def test_a_killed_bench_resumes_without_rerunning_finished_points(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    layer = tmp_path / "long.yaml"
    layer.write_text("loop:\n  generations: 400\n")
    script = tmp_path / "bench_script.py"
    script.write_text(_KILLED)
    out = tmp_path / "bench"
    command = [sys.executable, str(script), str(out), str(layer)]
    runs = out / "runs" / "slow_gaussian"
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            done = [p for p in runs.glob("*/point.json") if json.loads(p.read_text() or "{}").get("status") == "ok"]
            if done:
                break
            time.sleep(0.2)
        assert process.poll() is None, "the bench ended before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)  # the bench and its workers, at once
        process.wait(30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    finished = {p.parent.name: p.read_bytes() for p in done}
    assert len(finished) < 6 and not (out / "bench.json").exists()
    assert subprocess.run(command, timeout=600).returncode == 0
    for name, state in finished.items():  # never rerun: its record is untouched
        assert (runs / name / "point.json").read_bytes() == state
    card = read_card(out)
    arms = card["tasks"]["slow_gaussian"]["methods"]
    assert all(arm["status"] == "ok" and len(arm["values"]) == 3 for arm in arms.values())


def test_a_bench_runs_its_points_as_submitit_jobs_and_gives_the_same_values(
    first: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """The submitit-local launcher (the code path of SLURM): the same values as local workers."""
    card = bench.run(
        "quick", None, "0-1", out=tmp_path / "jobs", tasks=["gaussian_prop1"], launcher="submitit-local", jobs=2,
        figures=False,
    )  # fmt: skip
    arms, local = card["tasks"]["gaussian_prop1"]["methods"], first[1]["tasks"]["gaussian_prop1"]["methods"]
    for name in ("real_only", "uncorrected"):
        assert arms[name]["values"] == local[name]["values"][:2]
    assert list((tmp_path / "jobs" / "runs" / "gaussian_prop1" / ".submitit").iterdir())
