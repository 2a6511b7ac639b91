"""scripts/neon_gain.py on sweeps whose gains are known: paired per w, and at the w chosen on validation."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import load_script

SCRIPT = Path(__file__).parents[2] / "scripts" / "neon_gain.py"


def _module() -> Any:
    return load_script(SCRIPT)


def _sweep(folder: Path, rows: list[tuple[int, float, float, float]]) -> None:
    folder.mkdir(parents=True)
    with open(folder / "sweep.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["seed", "w", "frechet_validation", "frechet_test"])
        writer.writerows(rows)


def test_gains_are_paired_by_seed_and_the_choice_is_made_on_validation(tmp_path: Path) -> None:
    # seed 0: base test 1.0, w = 0.5 test 0.8 (gain 0.2), validation prefers 0.5
    # seed 1: base test 2.0, w = 0.5 test 2.1 (gain -0.1), validation prefers 0 (the base)
    _sweep(tmp_path / "a", [(0, 0.0, 1.0, 1.0), (0, 0.5, 0.9, 0.8), (1, 0.0, 1.0, 2.0), (1, 0.5, 1.1, 2.1)])
    assert _module().main([str(tmp_path / "a"), "--out", str(tmp_path / "out")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "out" / "gain.csv")))
    base, half, chosen = rows
    assert float(base["gain"]) == 0.0 and base["wins"] == "0"
    assert float(half["gain"]) == pytest.approx(0.05) and float(half["gain_se"]) == pytest.approx(0.15)
    assert chosen["w"] == "chosen on validation: 0.5 0" and float(chosen["gain"]) == pytest.approx(0.1)
    assert float(chosen["relative_gain"]) == pytest.approx(0.1) and chosen["wins"] == "1"
    assert (tmp_path / "out" / "gain.png").stat().st_size > 5_000


def test_a_sweep_without_the_base_model_is_refused(tmp_path: Path) -> None:
    _sweep(tmp_path / "a", [(0, 0.5, 0.9, 0.8)])
    with pytest.raises(SystemExit, match="seed 0 has no w = 0"):
        _module().main([str(tmp_path / "a"), "--out", str(tmp_path / "out")])
