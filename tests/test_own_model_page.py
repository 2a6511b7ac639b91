"""docs/own_model.md runs as written: its Python blocks, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

PAGE = Path(__file__).parents[1] / "docs" / "own_model.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)


def test_the_loop_is_added_in_under_ten_lines() -> None:
    adding = next(block for block in _blocks() if "SelfConsumingLoop(" in block)
    lines = [line for line in adding.splitlines() if line.strip()]
    assert len(lines) <= 10, lines


def test_the_page_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.chdir(tmp_path)  # the Trainer's default logger writes under the working directory
    namespace: dict[str, Any] = {"__name__": "own_model_page"}
    for block in _blocks():
        exec(compile(block, str(PAGE), "exec"), namespace)  # the page's own code
    loop, trainer = namespace["loop"], namespace["trainer"]
    counts = [(r.generation, r.num_real, r.num_synthetic, r.num_trained) for r in loop.history]
    assert counts == [(0, 1500, 0, 1536), (1, 1500, 750, 1536), (2, 1500, 750, 1536), (3, 1500, 750, 1536)]
    assert trainer.current_epoch == 4 and "val_loss" in trainer.callback_metrics
    assert (loop.output_dir / "manifest.json").is_file()
    printed = capsys.readouterr().out
    assert "3 1500 750 1536" in printed and "last validation loss" in printed
