"""scripts/reproduce_results.sh, the script behind docs/results.md, on its tiny setting."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "scripts" / "reproduce_results.sh"


def _run(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCLC": str(Path(sys.executable).with_name("sclc"))}
    return subprocess.run(
        ["bash", str(SCRIPT), "--tiny", "--out", str(out), *args], env=env, capture_output=True, text=True, timeout=3000
    )


def _points(folder: Path) -> list[dict[str, str]]:
    return [row for table in sorted(folder.rglob("runs.csv")) for row in csv.DictReader(open(table))]


@pytest.mark.slow  # 38 s; by default the grid (tests/grid) and the report (tests/test_report.py) it chains
def test_the_gillman_section_runs_its_three_settings_and_reports(tmp_path: Path) -> None:
    done = _run(tmp_path, "--only", "gillman_fig2", "--jobs", "2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    section = tmp_path / "gillman_fig2"
    for arm in ("accumulate", "augment", "accumulate_true_target"):
        rows = _points(section / arm)
        assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}, rows  # gamma 0, 1 x seeds 0, 1
        assert {r["final_generation"] for r in rows} == {"3"}
    for arm in ("accumulate", "augment", "accumulate_true_target"):  # a report per setting
        report = section / f"report_{arm}"
        assert (report / "w2.png").stat().st_size > 5_000
        assert (report / "report.html").read_text().count("<tr><td>") == 4
        summary = list(csv.DictReader(open(report / "summary.csv")))
        w2 = [row for row in summary if row["metric"] == "w2"]
        assert len(w2) == 2 and all(row["runs"] == "2" and row["last_generation"] == "3" for row in w2)
    gamma = list(csv.DictReader(open(section / "gamma" / "gamma.csv")))  # W2 against gamma, paired by seed
    assert [(r["setting"], r["gamma"], r["seeds"]) for r in gamma][:2] == [
        ("accumulate", "0.0", "2"),
        ("accumulate", "1.0", "2"),
    ]
    assert len(gamma) == 6 and all(float(r["vs_gamma0_mean"]) == 0.0 for r in gamma if r["gamma"] == "0.0")
    assert (section / "gamma" / "gamma.png").stat().st_size > 10_000
    assert "gillman_fig2:" in (tmp_path / "times.txt").read_text()


def test_an_unknown_argument_is_refused(tmp_path: Path) -> None:
    done = _run(tmp_path, "--bogus")
    assert done.returncode == 2 and "unknown argument --bogus" in done.stderr


@pytest.mark.slow
def test_every_section_runs_on_the_tiny_setting(tmp_path: Path) -> None:
    done = _run(tmp_path, "--jobs", "2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sections = sorted({p.parent.parent.name for p in tmp_path.glob("*/report*/report.html")})
    assert len(sections) == 17, sections  # the sources (13) and beyond them (4)
    assert {r["status"] for r in _points(tmp_path)} == {"ok"}
