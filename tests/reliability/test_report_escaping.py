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
