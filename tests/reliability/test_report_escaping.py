"""`sclc report` with names an attacker chose: nothing runs in the page, nothing is written outside `--out`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
    run = _run_with(tmp_path, ["generation", "cost", "w2"], [[0, "1." + "0" * 10_000_000, 1.0], [1, "2", 0.5]])
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0  # any field size
    _run_with(tmp_path / "text", ["generation", "note", "w2"], [[0, "x" * 10_000_000, 1.0], [1, "y", 0.5]])
    assert main(["report", str(tmp_path / "text" / "runs"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err  # a huge cell that is not a number: named, not printed whole
    assert "line 2: the 'note' cell 'xxx" in error and "..." in error and len(error) < 600
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


GOOD = [[0, 1.0], [1, 0.5], [2, 0.25]]


@pytest.mark.parametrize(
    ("rows", "line", "problem"),
    [
        ([*GOOD, [2, 0.3]], 5, "generation 2 after generation 2, where 3 is expected"),  # a row twice
        ([[0, 1.0], [1, 0.5], [1, 0.6], [2, 0.25]], 4, "generation 1 after generation 1, where 2 is expected"),
        ([*GOOD, ["6.5", 0.1]], 5, "the generation '6.5' is not a whole number >= 0"),
        ([*GOOD, [-6, 0.1]], 5, "the generation '-6' is not a whole number >= 0"),
        ([*GOOD, ["six", 0.1]], 5, "the generation 'six' is not a whole number >= 0"),
        ([*GOOD, ["", 0.1]], 5, "the generation '' is not a whole number >= 0"),
        ([*GOOD, [3, "abc"]], 5, "the 'w2' cell 'abc' is not a number"),
        ([*GOOD, [99999999999, 0.1]], 5, "generation 99999999999 after generation 2, where 3 is expected"),
        ([[0, 1.0], [2, 0.5]], 3, "generation 2 after generation 0, where 1 is expected"),
        ([[5, 1.0], [6, 0.5]], 2, "generation 5 in the first row, where 0 or 1 is expected"),
        ([*GOOD, [3, 0.1, 7]], 5, "3 cells, but the header has 2 columns"),  # ragged rows
        ([*GOOD, [3]], 5, "1 cells, but the header has 2 columns"),
    ],
)
def test_a_damaged_metrics_csv_is_refused_naming_the_file_and_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: list[list[object]], line: int, problem: str
) -> None:
    """D3: duplicate rows were averaged or overwritten, '6.5' read as 6, bad rows dropped, a far
    generation plotted, ragged rows accepted: each gave a figure silently wrong."""
    from sclc_lightning.report import ReportError, find_runs

    run = _run_with(tmp_path, ["generation", "w2"], rows)
    with pytest.raises(ReportError, match=re.escape(f"{run / 'metrics.csv'}, line {line}: ") + f"({problem})"):
        find_runs([tmp_path / "runs"])
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"sclc report: {run / 'metrics.csv'}, line {line}: ") and len(error.splitlines()) == 1
    assert not (tmp_path / "out" / "w2.png").exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"w2,sigma\n1.0,2.0\n", "line 1: no `generation` column (the columns: w2, sigma)"),
        (b"", "line 1: the file is empty"),
        (b"generation,w2,w2\n0,1,2\n", "line 1: the column(s) ['w2'] appear more than once"),
        (b"generation,w2\n0,1\n\x9c\xff\xfe\x00\x81,\xc3\n", "line 3: not text (bytes that are not UTF-8)"),
        (bytes(range(256)) * 4, "line 2: not text"),  # random bytes (a newline at byte 10)
    ],
)
def test_a_metrics_csv_that_is_not_one_is_refused_naming_it(tmp_path: Path, content: bytes, problem: str) -> None:
    """D3: no `generation` column gave 'No run with a metrics.csv under [...]', random bytes a
    decode error naming no file."""
    from sclc_lightning.report import ReportError, find_runs

    run = _run_with(tmp_path, ["generation", "w2"], [])
    (run / "metrics.csv").write_bytes(content)
    with pytest.raises(ReportError, match=re.escape(f"{run / 'metrics.csv'}, {problem}")):
        find_runs([tmp_path / "runs"])


def test_empty_and_nan_cells_are_metrics_not_logged_that_generation(tmp_path: Path) -> None:
    """GenerationCSV writes a metric a generation did not log as an empty cell (csv.DictWriter's
    restval), and a NaN as 'nan': neither is damage, both are left out of the series."""
    import csv
    import io

    from sclc_lightning.report import find_runs

    line = io.StringIO()
    csv.DictWriter(line, fieldnames=["generation", "w2", "fid"]).writerow({"generation": 0, "w2": 1.0})
    assert line.getvalue() == "0,1.0,\r\n"  # what GenerationCSV writes for a metric not logged
    _run_with(tmp_path, ["generation", "w2", "fid"], [[0, 1.0, ""], [1, "nan", 3.0], ["2.0", 0.25, ""]])
    (run,) = find_runs([tmp_path / "runs"])
    assert run.series("w2") == {0: 1.0, 2: 0.25} and run.series("fid") == {1: 3.0}
    assert run.series("generation") == {0: 0.0, 1: 1.0, 2: 2.0}
