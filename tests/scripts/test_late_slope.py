"""scripts/late_slope.py on metrics it can be checked against: known slopes, windows and pairs."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import load_script

SCRIPT = Path(__file__).parents[2] / "scripts" / "late_slope.py"


def _module() -> Any:
    return load_script(SCRIPT)


def _run(folder: Path, seed: int, values: list[float]) -> None:
    run = folder / f"mode=accumulate_seed={seed}"
    run.mkdir(parents=True)
    with open(run / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["generation", "w2", "sigma"])
        writer.writerows([g, v, 1.0] for g, v in enumerate(values))


def test_slopes_windows_and_paired_differences(tmp_path: Path) -> None:
    # folder a: w2 = 1 flat; folder b: w2² = 1 + 0.01 g (seed 0) and 2 + 0.03 g (seed 1)
    for seed in (0, 1):
        _run(tmp_path / "a", seed, [1.0] * 40)
    _run(tmp_path / "b", 0, [(1 + 0.01 * g) ** 0.5 for g in range(40)])
    _run(tmp_path / "b", 1, [(2 + 0.03 * g) ** 0.5 for g in range(40)])
    out = tmp_path / "slope.csv"
    args = [str(tmp_path / "a"), str(tmp_path / "b"), "--square", "--start", "10", "--window", "10", "--out", str(out)]
    assert _module().main(args) == 0
    a, b = list(csv.DictReader(open(out)))
    assert float(a["slope"]) == pytest.approx(0.0, abs=1e-12) and float(a["late"]) == pytest.approx(1.0)
    assert float(b["slope_per_100"]) == pytest.approx(2.0) and float(b["slope_per_100_se"]) == pytest.approx(1.0)
    # late window: generations 30..39, mean 34.5: seed 0 1.345, seed 1 3.035, each minus 1
    assert float(b["late"]) == pytest.approx((1.345 + 3.035) / 2)
    assert float(b["late_minus_first"]) == pytest.approx((0.345 + 2.035) / 2)
    assert float(b["early"]) == pytest.approx((1 + 0.01 * 14.5 + 2 + 0.03 * 14.5) / 2)
    assert int(b["seeds"]) == 2 and int(b["last"]) == 39


def test_a_run_too_short_for_two_windows_is_refused(tmp_path: Path) -> None:
    _run(tmp_path / "a", 0, [1.0] * 15)
    with pytest.raises(SystemExit, match="fewer than 2 windows"):
        _module().main([str(tmp_path / "a"), "--start", "10", "--window", "10", "--out", str(tmp_path / "o.csv")])
