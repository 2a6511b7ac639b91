"""`sclc report` on real small runs: files, grouping over seeds, the theory overlay, the HTML."""

from __future__ import annotations

import math
from pathlib import Path

from sclc_lightning.cli import main
from sclc_lightning.report import _theory_curve, find_runs
from sclc_lightning.theory import gaussian_collapse_rate

RECIPE = str(Path(__file__).parents[1] / "recipes" / "gaussian_collapse.yaml")


def test_report_from_real_runs(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    for seed in (0, 1):
        assert (
            main(
                [
                    "fit",
                    "--config",
                    RECIPE,
                    "--run_dir",
                    str(runs_dir / f"replace{seed}"),
                    "--loop.generations",
                    "4",
                    "--seed_everything",
                    str(seed),
                    "--loop.seed",
                    str(seed),
                ]
            )
            == 0
        )
    assert (
        main(
            [
                "fit",
                "--config",
                RECIPE,
                "--run_dir",
                str(runs_dir / "baseline"),
                "--loop.generations",
                "4",
                "--loop.synthetic_fraction",
                "0",
                "--loop.mode",
                "augment",
            ]
        )
        == 0
    )
    runs = find_runs([runs_dir])
    assert sorted(r.path.name for r in runs) == ["baseline", "replace0", "replace1"]  # logs/*/metrics.csv skipped
    groups = {r.group for r in runs}
    assert groups == {"λ=1.0 γ=0 replace none", "λ=0.0 γ=0 augment none"}  # the two seeds form one group
    replace = [r for r in runs if r.loop["mode"] == "replace"]
    theory = _theory_curve(replace)
    assert theory is not None and theory[0] == [0, 1, 2, 3, 4]
    start = (replace[0].series("sigma")[0] + replace[1].series("sigma")[0]) / 2
    assert math.isclose(theory[1][4], start * gaussian_collapse_rate(10) ** 4)
    assert _theory_curve([r for r in runs if r.path.name == "baseline"]) is None

    out = tmp_path / "report"
    assert main(["report", str(runs_dir), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    for metric in ("sigma", "w2", "num_synthetic", "time_training_s"):
        assert (out / f"{metric}.png").stat().st_size > 5_000 and f"<h3>{metric}</h3>" in page
    for run in runs:
        assert str(run.path) in page
    assert page.count("data:image/png;base64,") == len(list(out.glob("*.png")))  # self-contained


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
        "x.png",
    ]
