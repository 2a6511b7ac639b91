"""scripts/curation_stability.py on metrics it can be checked against: means and standard errors
over seeds, the population dynamics beside them, and a folder without the divergence refused."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import load_script

SCRIPT = Path(__file__).parents[2] / "scripts" / "curation_stability.py"


def _module() -> Any:
    return load_script(SCRIPT)


def _run(folder: Path, seed: int, kl: list[float], weight: list[float]) -> None:
    run = folder / f"seed={seed}"
    run.mkdir(parents=True)
    with open(run / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["generation", "kl_to_data", "max_mode_weight", "reward_mean"])
        writer.writerows([g, k, w, ""] for g, (k, w) in enumerate(zip(kl, weight)))


def test_measured_means_beside_the_population_dynamics(tmp_path: Path) -> None:
    _run(tmp_path / "augment", 0, [0.01, 0.1, 0.2], [0.13, 0.2, 0.3])
    _run(tmp_path / "augment", 1, [0.03, 0.3, 0.2], [0.13, 0.4, 0.3])
    out = tmp_path / "stability"
    args = [str(tmp_path / "augment"), "--out", str(out), "--points", "4000", "--draws", "512", "--shares", "0.5", "0"]
    assert _module().main(args) == 0
    rows = list(csv.DictReader(open(out / "stability.csv")))
    measured = [r for r in rows if r["arm"] == "augment"]
    assert [float(r["kl_to_data"]) for r in measured] == pytest.approx([0.02, 0.2, 0.2])
    assert [float(r["kl_to_data_se"]) for r in measured] == pytest.approx([0.01, 0.1, 0.0])
    assert float(measured[1]["max_mode_weight"]) == pytest.approx(0.3) and measured[1]["seeds"] == "2"
    half = [r for r in rows if r["arm"] == "theory s=0.5"]
    kl = [float(r["kl_to_data"]) for r in half]
    assert len(half) == 3 and kl[0] == 0 and 0 < kl[1] < kl[2] < math.log(2)
    assert [float(r["bound"]) for r in half] == pytest.approx([math.log(2)] * 3)
    assert (
        0.1 < float(half[0]["max_mode_weight"]) < 0.16 < float(half[2]["max_mode_weight"])
    )  # 1/8, then the mode grows
    alone = [float(r["kl_to_data"]) for r in rows if r["arm"] == "theory s=0"]
    assert alone[2] > kl[2] and {r["bound"] for r in rows if r["arm"] == "theory s=0"} == {"inf"}
    assert (out / "stability.png").stat().st_size > 10_000


def test_runs_without_the_divergence_are_refused(tmp_path: Path) -> None:
    run = tmp_path / "plain" / "seed=0"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("generation,frechet\n0,0.1\n")
    with pytest.raises(SystemExit, match=r"metrics.csv has no `kl_to_data`"):
        _module().main([str(tmp_path / "plain"), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match=r"no <\.\.\.>seed=<s>/metrics\.csv under"):
        _module().main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")])


def test_folders_of_the_same_name_stay_apart_and_a_diverged_seed_is_refused(tmp_path: Path) -> None:
    for study, kl in (("first", 0.1), ("second", 0.4)):
        _run(tmp_path / study / "augment", 0, [0.01, kl], [0.13, 0.2])
    _run(tmp_path / "first" / "replace", 0, [0.01, 0.5], [0.13, 0.2])
    (tmp_path / "first" / "replace" / "seed=1").mkdir()
    (tmp_path / "first" / "replace" / "seed=1" / "metrics.csv").write_text("generation,kl_to_data\n0,0.01\n1,0.2\n")
    folders = [str(tmp_path / study / arm) for study, arm in (("first", "augment"), ("second", "augment"))]
    out = tmp_path / "out"
    shared = ["--out", str(out), "--points", "400", "--draws", "64", "--shares"]
    assert _module().main([*folders, str(tmp_path / "first" / "replace"), *shared]) == 0
    rows = [r for r in csv.DictReader(open(out / "stability.csv")) if r["generation"] == "1"]
    assert {r["arm"]: float(r["kl_to_data"]) for r in rows} == pytest.approx(
        {"first/augment": 0.1, "second/augment": 0.4, "first/replace": 0.35}
    )
    assert (
        next(r for r in rows if r["arm"] == "first/replace")["seeds"] == "2"
    )  # counted on the KL, not the mode weight
    _run(tmp_path / "diverged", 0, [0.01, float("nan")], [0.13, 0.2])
    with pytest.raises(SystemExit, match=r"seed=0/metrics\.csv has `kl_to_data` = nan at generation 1"):
        _module().main([str(tmp_path / "diverged"), *shared])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--shares", "1.5"], "--shares must be real-data shares in"),
        (["--points", "1"], "--points must be at least 2"),
        (["--draws", "0"], "--draws must be at least 1"),
        (["--beta", "nan"], "--beta must be a finite number"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    _run(tmp_path / "augment", 0, [0.01, 0.1], [0.13, 0.2])
    with pytest.raises(SystemExit):
        _module().main([str(tmp_path / "augment"), "--out", str(tmp_path / "out"), *flags])
    assert message in capsys.readouterr().err


def test_without_a_seed_the_dynamics_draw_a_fresh_one_and_print_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No fixed default seed: each call draws its own, prints it, and ``--seed`` with that value
    redraws the same dynamics."""
    _run(tmp_path / "augment", 0, [0.01, 0.1], [0.13, 0.2])
    shared = [str(tmp_path / "augment"), "--points", "400", "--draws", "64"]
    seeds, tables = [], []
    for name in ("a", "b"):
        assert _module().main([*shared, "--out", str(tmp_path / name)]) == 0
        seeds.append(int(capsys.readouterr().out.split("--seed ")[1].split()[0]))
        tables.append((tmp_path / name / "stability.csv").read_text())
    assert seeds[0] != seeds[1] and tables[0] != tables[1]
    assert _module().main([*shared, "--out", str(tmp_path / "again"), "--seed", str(seeds[0])]) == 0
    assert (tmp_path / "again" / "stability.csv").read_text() == tables[0]
