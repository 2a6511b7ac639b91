"""The documentation site builds with ``mkdocs build --strict`` (API pages from the docstrings)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_docs_site_builds_strictly(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")
    config = load_config(str(ROOT / "mkdocs.yml"), site_dir=str(tmp_path / "site"), strict=True)
    build(config)  # raises on any warning (missing page, broken link, unparsable docstring)
    api = (tmp_path / "site" / "api" / "loop" / "index.html").read_text()
    assert "synthetic_fraction" in api and "images_per_generation" in api  # the docstrings made it
    pages = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    for page in (
        "quickstart/index.html",
        "metrics/index.html",
        "architecture/index.html",
        "api/correctors/index.html",
        "benchmarks/index.html",
    ):
        assert page in pages
    assert os.path.getsize(tmp_path / "site" / "api" / "correctors" / "index.html") > 10_000
