"""docs/own_model.md runs as written: its Python blocks, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

PAGE = Path(__file__).parents[1] / "docs" / "own_model.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)


def test_the_loop_is_added_in_under_ten_lines() -> None:
    adding = next(block for block in _blocks() if "SelfConsumingLoop(" in block)
    lines = [line for line in adding.splitlines() if line.strip()]
    assert len(lines) <= 10, lines


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    """The page's blocks run once, in order, in one namespace, in a fresh working directory (the
    Trainer's default logger writes under it); what they printed."""
    import contextlib
    import io
    import os

    folder, previous = tmp_path_factory.mktemp("page"), os.getcwd()
    namespace: dict[str, Any] = {"__name__": "own_model_page"}
    printed = io.StringIO()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(printed):
            for block in _blocks():
                exec(compile(block, str(PAGE), "exec"), namespace)  # the page's own code
    finally:
        os.chdir(previous)
    return namespace, printed.getvalue(), folder


def test_the_page_runs_as_written(page: tuple[dict[str, Any], str, Path]) -> None:
    namespace, printed, folder = page
    loop, trainer = namespace["loop"], namespace["trainer"]
    counts = [(r.generation, r.num_real, r.num_synthetic, r.num_trained) for r in loop.history]
    assert counts == [(0, 1500, 0, 1536), (1, 1500, 750, 1536), (2, 1500, 750, 1536), (3, 1500, 750, 1536)]
    assert trainer.current_epoch == 4 and "val_loss" in trainer.callback_metrics
    assert (folder / loop.output_dir / "manifest.json").is_file()
    assert "3 1500 750 1536" in printed and "last validation loss" in printed


def test_the_three_shapes_of_the_page(page: tuple[dict[str, Any], str, Path]) -> None:
    """The GAN (manual optimization), the model-zoo VAE (`sampler="generate"`) and the token LM
    (`fields={"labels": "data"}`) ran their generations; every synthetic text's labels are its own."""
    from safetensors.torch import load_file

    namespace, _, folder = page
    gan = [(r.generation, r.num_real, r.num_synthetic, r.num_trained) for r in namespace["gan_loop"].history]
    assert gan == [(0, 1000, 0, 2048), (1, 0, 1000, 2048), (2, 0, 1000, 2048)]
    assert namespace["gan_trainer"].global_step == 2 * 3 * 16  # two optimizer steps per batch
    zoo = [(r.generation, r.num_real, r.num_synthetic) for r in namespace["zoo_loop"].history]
    assert zoo == [(0, 1500, 0), (1, 1500, 750)]
    lm_loop = namespace["lm_loop"]
    assert [(r.num_real, r.num_synthetic) for r in lm_loop.history] == [(512, 0), (0, 512), (0, 512)]
    for generation in (1, 2):
        stored = load_file(str(folder / lm_loop.output_dir / f"gen_{generation:04d}" / "shard_00000.safetensors"))
        assert stored["data"].dtype == torch.int64 and torch.equal(stored["field.labels"], stored["data"])
