"""Kill -9 a fit and resume it; damage its run directory; start two fits on one directory.

The scenarios come from ``benchmarks/fault_injection.py``, which runs many more of them (random
kills) and prints the figures recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("fault_injection", ROOT / "benchmarks" / "fault_injection.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> Any:
    return _script()


@pytest.fixture(scope="module")
def reference(script: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, float]:
    """The final weights of an uninterrupted fit (in a subprocess, as the killed ones), and the
    duration of its fit."""
    digest, seconds = script.reference_digest(tmp_path_factory.mktemp("reference"))
    return str(digest), float(seconds)


def test_every_corruption_is_refused_naming_the_file(script: Any, tmp_path: Path) -> None:
    rows = script.corruption_table(tmp_path)
    assert len(rows) == len(script.CORRUPTIONS) >= 20
    for row in rows:
        assert row["ok"], row
    refused = [r for r in rows if r["expected"] == "refused"]
    assert all(r["outcome"] == "refused" and r["names_file"] for r in refused)
    clean = [r for r in rows if r["expected"] == "identical"]
    kinds = {r["kind"] for r in clean}
    assert kinds == {
        "leftovers of interrupted writes",
        "NaN in generation 3 (after the checkpoint)",
        "journal's last line cut short",
    }
    assert all(r["outcome"] == "resumed" and r["identical"] and r["rows_complete"] for r in clean)


@pytest.mark.parametrize(
    "point",
    [
        "shard",  # generation 2's shards written, its folder not in place
        pytest.param("record", marks=pytest.mark.slow),  # its folder in place, its record not in the manifest
        pytest.param("sampling", marks=pytest.mark.slow),
        pytest.param("checkpoint", marks=pytest.mark.slow),
        pytest.param("after-checkpoint", marks=pytest.mark.slow),
        pytest.param("training", marks=pytest.mark.slow),
    ],
)
def test_kill_at_a_chosen_point_then_resume(
    script: Any, reference: tuple[str, float], tmp_path: Path, point: str
) -> None:
    result = script.kill_and_resume(tmp_path / point, kill_at=point)
    assert result["killed"]
    assert result["digest"] == reference[0]  # bit for bit the uninterrupted run's weights
    assert result["rows_complete"] and result["leftovers"] == []


@pytest.mark.slow
def test_random_kills_then_resume(script: Any, reference: tuple[str, float], tmp_path: Path) -> None:
    import random

    digest, seconds = reference
    rng = random.Random(1)
    for index in range(5):
        result = script.kill_and_resume(tmp_path / f"kill{index}", delay=rng.uniform(0.0, seconds))
        assert result["digest"] == digest and result["rows_complete"] and result["leftovers"] == [], result


@pytest.mark.slow  # tests/loop/test_run_directory.py checks the lock in-process in the default suite
def test_two_fits_started_together_on_one_directory(script: Any, tmp_path: Path) -> None:
    """One fit gets the directory; the other is refused (before: both exited 0, the folder mixed)."""
    root = tmp_path / "shared"
    command = [sys.executable, str(ROOT / "benchmarks" / "fault_injection.py"), "fit", str(root)]
    logs = [tmp_path / "a.txt", tmp_path / "b.txt"]
    processes = [subprocess.Popen(command, stdout=open(log, "wb"), stderr=subprocess.STDOUT) for log in logs]
    codes = [p.wait(timeout=600) for p in processes]
    assert sorted(codes) == [0, 1], [log.read_text()[-2000:] for log in logs]
    refused = logs[codes.index(1)].read_text()
    assert "is in use by another fit" in refused or "already holds the synthetic data of run" in refused
    assert script.rows_complete(root) and script.leftovers(root) == []


@pytest.mark.slow
def test_every_bad_input_under_sclc_is_named_in_a_line_or_two(script: Any, tmp_path: Path) -> None:
    """No bad input is silent, hangs or ends in a traceback: each ends with a non-zero exit code
    and one or two lines naming the thing (each in its own `sclc` process, about a minute)."""
    rows = script.bad_input_table(tmp_path)
    assert len(rows) == len(script.bad_inputs(tmp_path)) >= 11
    assert [r["kind"] for r in rows if r["outcome"] != "named"] == [], rows


@pytest.mark.slow
def test_every_trust_case_is_named_or_right(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from trust_faults import trust_table
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    rows = trust_table(tmp_path)
    assert len(rows) >= 35
    assert [r for r in rows if r["outcome"] not in ("named", "ok")] == []
