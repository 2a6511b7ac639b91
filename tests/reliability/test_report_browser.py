"""The report in a real browser (Chromium from the system's packages, driven by Playwright; nothing
is downloaded): built from a run whose names an attacker chose, it runs no script, every image
loads, and the page logs no console error."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from sclc_lightning.cli import main

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no system Chromium (scripts/setup.sh installs it as root)")
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def hostile_report(root: Path) -> Path:
    """A report of two seeds of a run whose seed, metric names and picture names are hostile."""
    for seed in (0, 1):
        run = root / "runs" / f"r{seed}"
        (run / "samples").mkdir(parents=True)
        (run / "config.yaml").write_text(
            "loop:\n  seed: '<script>alert(1)</script>'\n  mode: replace\n  synthetic_fraction: 1.0\n"
        )
        columns = ["generation", "<img src=x onerror=alert(2)>", "<script>alert(3)</script>", "sigma"]
        lines = [",".join(f'"{c}"' for c in columns)]
        lines += [f"{g},{g},{2 * g},{0.9**g + 0.01 * seed}" for g in range(6)]
        (run / "metrics.csv").write_text("\n".join(lines) + "\n")
        for g in (0, 5):
            (run / "samples" / f"generation_000{g}<img src=x onerror=alert(4)>.png").write_bytes(PNG)
    out = root / "report"
    assert main(["report", str(root / "runs"), "--out", str(out)]) == 0
    return out / "report.html"


def test_the_report_runs_no_script_loads_every_image_and_logs_no_error(tmp_path: Path) -> None:
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    page_file = hostile_report(tmp_path)
    dialogs: list[str] = []
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=BROWSER, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            images = page.evaluate("Array.from(document.images).map(i => [i.complete && i.naturalWidth > 0, i.alt])")
            scripts = page.evaluate("document.querySelectorAll('script').length")
            handlers = page.evaluate("document.querySelectorAll('[onerror], [onload], [onclick]').length")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert dialogs == [] and scripts == 0 and handlers == 0
    assert problems == []
    assert len(images) == 3 + 4  # three metrics; two pictures of each of the two runs
    assert all(loaded for loaded, _ in images), images
    assert all(alt and not alt.endswith(".png") for _, alt in images), images
    assert (tmp_path / "report.png").stat().st_size > 10_000
