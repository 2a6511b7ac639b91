"""`sclc report` with names an attacker chose: nothing runs in the page, nothing is written outside `--out`."""

from __future__ import annotations

from pathlib import Path

from sclc_lightning.cli import main


def test_hostile_names_are_escaped_and_stay_inside_out(tmp_path: Path) -> None:
    """A seed, metric names and a picture name an attacker chose cannot run in the page or
    write outside `--out`."""
    import base64

    run = tmp_path / "runs" / "r"
    (run / "samples").mkdir(parents=True)
    (run / "config.yaml").write_text("loop:\n  seed: '<script>alert(1)</script>'\n  mode: replace\n")
    columns = ["generation", "../../x", "<script>alert(2)</script>", "cost $a$ in $", "sigma"]
    lines = [",".join(f'"{c}"' for c in columns)] + [f"{g},1,2,3,{1 - 0.1 * g}" for g in range(3)]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    )
    (run / "samples" / "generation_0<img src=x onerror=alert(3)>.png").write_bytes(png)
    out = tmp_path / "deep" / "report"
    assert main(["report", str(tmp_path / "runs"), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "<script>" not in page and "<img src=x" not in page and "onerror=alert(3)>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "generation_0&lt;img src=x onerror=alert(3)&gt;" in page
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "deep" / "x.png").exists()
    assert sorted(p.name for p in out.iterdir()) == [
        "cost_a_in.png",
        "report.html",
        "script_alert_2_script.png",
        "sigma.png",
        "summary.csv",
        "x.png",
    ]


def _run_with(tmp_path: Path, header: list[str], rows: list[list[object]]) -> Path:
    import csv

    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("loop:\n  seed: 0\n  mode: replace\n  synthetic_fraction: 1.0\n")
    with open(run / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return run


def test_summary_cells_never_start_a_formula(tmp_path: Path) -> None:
    """Metric names an attacker chose reach `summary.csv`, which people open in a spreadsheet:
    cells that would start a formula are neutralised, numbers are not."""
    import csv

    hostile = ['=HYPERLINK("http://evil","x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    _run_with(tmp_path, ["generation", *hostile, "w2"], [[g, *([g] * len(hostile)), -0.5 * g] for g in range(3)])
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    with open(tmp_path / "out" / "summary.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    cells = [cell for row in rows[1:] for cell in row]
    assert not [c for c in cells if c.startswith(("=", "+", "@", "\t", "\r"))]
    assert not [c for c in cells if c.startswith("-") and not c.lstrip("-").replace(".", "").isdigit()]
    assert {row[1] for row in rows[1:]} >= {"'" + h for h in hostile} | {"w2"}
    assert [row[4] for row in rows[1:] if row[1] == "w2"] == ["-1"]  # a negative number stays a number


def test_a_huge_cell_and_a_broken_file_end_in_a_message(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    run = _run_with(tmp_path, ["generation", "note", "w2"], [[0, "x" * 10_000_000, 1.0], [1, "y", 0.5]])
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0  # any field size
    (run / "config.yaml").write_text("loop: [unclosed\n")
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("sclc report: ") and "Traceback" not in error and len(error.splitlines()) <= 6
    assert main(["report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "No such run or grid folder" in capsys.readouterr().err


def test_out_inside_a_runs_synthetic_data_is_refused(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    run = _run_with(tmp_path, ["generation", "w2"], [[0, 1.0], [1, 0.5]])
    (run / "synthetic" / "gen_0001").mkdir(parents=True)
    (run / "synthetic" / "manifest.json").write_text("{}")
    for inside in (run / "synthetic", run / "synthetic" / "gen_0001", run / "synthetic" / "report"):
        assert main(["report", str(tmp_path / "runs"), "--out", str(inside)]) == 2
        assert "is inside the synthetic data of a run" in capsys.readouterr().err
    assert not (run / "synthetic" / "report").exists()
    assert main(["report", str(tmp_path / "runs"), "--out", str(run / "report")]) == 0  # beside the data: fine
