"""scripts/paired_metrics.py on runs whose differences are known: arms by folder and point, pairs by seed."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import load_script

SCRIPT = Path(__file__).parents[2] / "scripts" / "paired_metrics.py"


def _module() -> Any:
    return load_script(SCRIPT)


def _run(folder: Path, values: dict[int, float]) -> None:
    folder.mkdir(parents=True)
    with open(folder / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["generation", "fid"])
        writer.writerows([g, v] for g, v in values.items())


def test_arms_and_paired_differences(tmp_path: Path) -> None:
    for seed, (plain, physics, real) in enumerate([(10.0, 7.0, 1.0), (20.0, 16.0, 3.0)]):
        _run(tmp_path / "loops" / f"corrector=null_seed={seed}", {0: 5.0, 5: plain})
        _run(tmp_path / "loops" / f"corrector=physics_seed={seed}", {0: 5.0, 5: physics})
        _run(tmp_path / "real_only" / f"seed={seed}", {0: 5.0, 5: real})
    out = tmp_path / "paired.csv"
    folders = [str(tmp_path / "loops"), str(tmp_path / "real_only")]
    assert _module().main([*folders, "--metric", "fid", "--generation", "5", "--out", str(out)]) == 0
    rows = {(r["arm"], r["minus"]): r for r in csv.DictReader(open(out))}
    assert float(rows[("loops/corrector=null", "")]["mean"]) == 15.0
    assert float(rows[("real_only", "")]["mean"]) == 2.0
    pair = rows[("loops/corrector=null", "loops/corrector=physics")]  # 3 and 4: mean 3.5, se 0.5
    assert float(pair["mean"]) == pytest.approx(3.5) and float(pair["se"]) == pytest.approx(0.5)
    assert float(rows[("loops/corrector=physics", "real_only")]["mean"]) == pytest.approx(9.5)


def test_a_run_without_the_generation_is_refused(tmp_path: Path) -> None:
    _run(tmp_path / "loops" / "seed=0", {0: 5.0})
    with pytest.raises(SystemExit, match="has no generation 5"):
        _module().main(
            [str(tmp_path / "loops"), "--metric", "fid", "--generation", "5", "--out", str(tmp_path / "o.csv")]
        )
