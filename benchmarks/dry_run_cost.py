"""What the dry run before generation 0 costs, next to generation 0 itself, on the recipes.

Each recipe runs through ``sclc fit`` as configured (model, sampler and its sampling steps,
corrector, batch size), with generation 0 cut to ``--batches`` batches, ``max_steps`` ending the
fit there, and without its evaluation callbacks. The script reads the dry run's time from the loop's log
line and generation 0's training throughput from ``metrics.csv``, and projects generation 0 of
the recipe as configured (``initial_images``, or one pass over the real data) from it. The ratio
is the dry run's share of what it protects: the generation 0 that a mistake it finds would have
wasted.

Usage: ``python benchmarks/dry_run_cost.py [--recipe NAME[+LAYER] ...] [--batches 4]``
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sclc_lightning.cli import main as sclc_main

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
#: The recipes that run here as they stand (the paper-size ones with their small layer).
CPU_RECIPES = [
    "gaussian_toy",
    "gaussian_collapse",
    "eight_gaussians_ddpm",
    "two_moons_cfm",
    "digits_ddpm",
    "linear_regression",
    "gmm_em",
    "vae_replace_accumulate",
    "lm_finetune",
    "lm_pretrain",
    "mnist_ddpm+small/mnist_ddpm",
    "motion_physics+small/motion_physics",
    "cifar10_ddpm+small/cifar10",
]


class _DryRunLine(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"dry run passed in ([0-9.]+) s", record.getMessage())
        if found:
            self.seconds = float(found.group(1))


def _merged(files: list[Path]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in files:
        layer = yaml.safe_load(path.read_text()) or {}
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


def _batch_size(data: dict[str, Any]) -> int | None:
    """The DataModule's batch size: the recipe's, else the class's default (``None``: one batch
    of everything)."""
    given = (data.get("init_args") or {}).get("batch_size")
    if given is not None:
        return int(given)
    import importlib
    import inspect

    module, _, name = data["class_path"].rpartition(".")
    default = inspect.signature(getattr(importlib.import_module(module), name)).parameters["batch_size"].default
    return None if default is None else int(default)


def _images(folder: Path, count: int, size: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray((rng.random((size, size, 3)) * 255).astype("uint8")).save(folder / f"{i:05d}.png")


def measure(spec: str, batches: int, work: Path) -> dict[str, Any]:
    """The dry run's seconds and generation 0's projected seconds for ``recipe[+layer]``."""
    recipe, _, layer = spec.partition("+")
    files = [RECIPES / f"{recipe}.yaml", *([RECIPES / f"{layer}.yaml"] if layer else [])]
    config = _merged(files)
    batch = _batch_size(config["data"])
    args = ["fit", *(a for f in files for a in ("--config", str(f))), "--run_dir", str(work / spec.replace("/", "_"))]
    if "cifar10" in recipe and batch is not None:  # CIFAR-10 is not here: random images of its size
        _images(work / "images", 4 * batch + 32, 32)
        args += ["--data", "sclc_lightning.datasets.images.ImageFolderDataModule"]
        args += ["--data.init_args.root", str(work / "images")]
        args += ["--data.init_args.resolution", "32", "--data.init_args.batch_size", str(batch)]
    args += ["--loop.generations", "1"]
    if batch is not None:  # else generation 0 is one exact fit: trained as configured
        cut = str(batches * batch)
        args += ["--loop.initial_images", cut, "--loop.images_per_generation", cut]
        args += ["--trainer.max_steps", str(batches)]  # the fit ends with generation 0: nothing sampled after
    args += ["--trainer.callbacks", "[]", "--trainer.enable_checkpointing", "false", "--wandb", "false"]
    handler = _DryRunLine()
    # The loop logs through Lightning's rank-zero logger, which stops propagating at
    # `lightning.pytorch` when the root logger had no handler as Lightning was imported.
    loggers = [logging.getLogger(), logging.getLogger("lightning.pytorch")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        if sclc_main(args) != 0:
            raise RuntimeError(f"sclc fit failed for {spec}")
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    if handler.seconds is None:
        raise RuntimeError(f"{spec}: the loop logged no dry run")
    with open(work / spec.replace("/", "_") / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    first = next(r for r in rows if int(float(r["generation"])) == 0)
    trained, seconds = float(first["num_trained"]), float(first["time_training_s"])
    loop = config["loop"]
    planned = loop.get("initial_images", loop.get("images_per_generation"))
    planned = float(planned) if planned else float(first["num_real"])
    return {
        "recipe": spec,
        "dry_run_s": handler.seconds,
        "generation_0_s": planned / (trained / seconds),
        "generation_0_images": planned,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", action="append", default=None, help="recipe[+layer]; default: the CPU recipes")
    parser.add_argument("--batches", type=int, default=4, help="batches of generation 0 actually trained")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sclc-dry-run-"))
    rows = []
    for spec in args.recipe or CPU_RECIPES:
        rows.append(measure(spec, args.batches, work))
        print(f"measured {rows[-1]}", flush=True)
    print("| recipe | dry run | generation 0 (projected) | share |")
    print("|---|---|---|---|")
    for row in rows:
        share = row["dry_run_s"] / row["generation_0_s"]
        print(
            f"| `{row['recipe']}` | {_seconds(row['dry_run_s'])} | {_seconds(row['generation_0_s'])}"
            f" ({row['generation_0_images']:,.0f} images) | {_percent(share)} |"
        )


def _percent(share: float) -> str:
    return f"{100 * share:.0f} %" if share >= 0.1 else f"{100 * share:.2g} %"


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:,.1f} s"


if __name__ == "__main__":
    main()
