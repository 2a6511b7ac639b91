"""Cost of the paper-size recipes: measured throughput and the full run projected from it.

A paper-size recipe trains for hours to days. This script runs it exactly as configured (model,
batch size, precision, sampler, corrector) through ``sclc fit``, but for only ``--steps``
optimizer steps per generation, ``--samples`` synthetic points per generation and
``--generations`` generations after generation 0. It reads the loop's own timings of the last
generation from ``metrics.csv`` (so start-up, warm-up and one-off corrector set-up are left
out) and projects the full run of the recipe:

- generation 0: ``initial_images / batch`` steps;
- every later generation: ``images_per_generation / batch`` steps, plus sampling and correcting
  ``floor(lambda * n)`` points (n of the paper: 50,000 for CIFAR-10, 70,000 for FFHQ);
- evaluation: the evaluation callbacks' ``num_samples`` points sampled per generation (sampling
  only; Inception or classifier features are not included).

CIFAR-10 and FFHQ are replaced by random stand-in images of the same size (throughput does not
depend on the pixels); MNIST-5k and the motions are the recipes' own data. The evaluation and
figure callbacks are left out of the timed run. Without CUDA the run uses 32-bit precision.

Usage::

    python benchmarks/recipe_cost.py --recipe cifar10_ddpm [--recipe ...] [--steps 20]
        [--samples 256] [--generations 2] [--out runs/recipe-cost]
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from sclc_lightning.cli import main as sclc_main

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
PAPER_RECIPES = ["mnist_ddpm", "cifar10_ddpm", "cifar10_edm", "ffhq64_edm", "motion_physics"]
# n of the papers' datasets, for recipes whose real data is not on this machine.
PAPER_N = {"cifar10_ddpm": 50_000, "cifar10_edm": 50_000, "ffhq64_edm": 70_000}
EVALUATORS = ("ImageMetrics", "MotionMetrics", "PointMetrics")


def _stand_in_images(folder: Path, count: int, size: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray((rng.random((size, size, 3)) * 255).astype("uint8")).save(folder / f"{i:05d}.png")


def timed_config(recipe: str, config: dict[str, Any], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The recipe, cut down to a few steps and samples per generation (everything else unchanged)."""
    timed = copy.deepcopy(config)
    loop, trainer, data = timed["loop"], timed["trainer"], timed["data"]
    batch = args.batch_size or int(data["init_args"]["batch_size"])
    data["init_args"]["batch_size"] = batch
    if recipe in PAPER_N:  # CIFAR-10 / FFHQ are not here: random images of the same size
        resolution = int(data["init_args"].get("resolution", timed["model"]["init_args"]["image_size"]))
        count = max(2 * batch, args.samples + 1)
        _stand_in_images(work / "images", count, resolution)
        workers = min(int(data["init_args"].get("num_workers", 0)), os.cpu_count() or 1)
        timed["data"] = {
            "class_path": "sclc_lightning.datasets.images.ImageFolderDataModule",
            "init_args": {
                "root": str(work / "images"),
                "resolution": resolution,
                "test_fraction": 0.0,
                "batch_size": batch,
                "num_workers": workers,
            },
        }
        n_timed = count
    elif recipe == "motion_physics":
        n_timed = int(data["init_args"]["n"])
    else:  # MNIST-5k: 80 % of 5,000 images train
        n_timed = 4000
    loop["generations"] = args.generations
    loop["initial_images"] = loop["images_per_generation"] = args.steps * batch
    loop["synthetic_fraction"] = (args.samples + 0.5) / n_timed
    left_out = (*EVALUATORS, "SampleFigures")
    trainer["callbacks"] = [c for c in trainer.get("callbacks", []) if c["class_path"].split(".")[-1] not in left_out]
    trainer["enable_checkpointing"] = False
    trainer["enable_progress_bar"] = False
    if not torch.cuda.is_available():
        trainer["precision"] = "32-true"
    return timed


def project(recipe: str, config: dict[str, Any], row: dict[str, float], args: argparse.Namespace) -> dict[str, Any]:
    """Per-step and per-sample costs of the timed run, and the full recipe's duration from them."""
    loop = config["loop"]
    batch = int(config["data"]["init_args"]["batch_size"])
    # A step at the recipe's batch costs batch / timed batch steps at the timed one.
    step_s = row["time_training_s"] / args.steps * batch / (args.batch_size or batch)
    sample_s = row["time_sampling_s"] / row["num_synthetic"]
    correct_s = row["time_correcting_s"] / row["num_synthetic"]
    n = PAPER_N.get(recipe) or int(row["n"])
    k = math.floor(float(loop["synthetic_fraction"]) * n)
    generations = int(loop["generations"])
    gen0_steps = int(loop.get("initial_images") or loop["images_per_generation"]) / batch
    later_steps = int(loop["images_per_generation"]) / batch
    evaluated = sum(
        int(c["init_args"].get("num_samples", 0))
        for c in config["trainer"].get("callbacks", [])
        if c["class_path"].split(".")[-1] in EVALUATORS
    )
    gen0_s = gen0_steps * step_s
    later_s = later_steps * step_s + k * (sample_s + correct_s)
    eval_s = evaluated * sample_s
    total_s = gen0_s + generations * later_s + (generations + 1) * eval_s
    return {
        "recipe": recipe,
        "batch": batch,
        "timed_batch": args.batch_size or batch,
        "step_s": step_s,
        "images_per_s": batch / step_s,
        "sample_s": sample_s,
        "correct_s": correct_s,
        "n": n,
        "synthetic_per_generation": k,
        "generation0_h": gen0_s / 3600,
        "later_generation_h": later_s / 3600,
        "evaluation_per_generation_h": eval_s / 3600,
        "generations": generations,
        "total_h": total_s / 3600,
    }


def run(recipe: str, args: argparse.Namespace) -> dict[str, Any]:
    config = yaml.safe_load((RECIPES / f"{recipe}.yaml").read_text())
    out = Path(args.out) / recipe
    shutil.rmtree(out, ignore_errors=True)  # a fresh run directory (the loop refuses another run's data)
    with tempfile.TemporaryDirectory() as tmp:
        timed = timed_config(recipe, config, args, Path(tmp))
        path = Path(tmp) / "timed.yaml"
        path.write_text(yaml.safe_dump(timed))
        start = time.perf_counter()
        code = sclc_main(["fit", "--config", str(path), "--run_dir", str(out), "--wandb", "false"])
        wall = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"sclc fit of {recipe} exited with {code}")
    with open(out / "metrics.csv") as f:
        rows = [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]
    last = rows[-1]
    last["n"] = rows[0]["num_real"]
    result = project(recipe, config, last, args)
    result["timed_run_s"] = wall
    result["precision"] = timed["trainer"].get("precision", "32-true")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", action="append", choices=PAPER_RECIPES, help="default: all paper-size recipes")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per generation")
    parser.add_argument("--samples", type=int, default=256, help="synthetic points per generation")
    parser.add_argument("--generations", type=int, default=2, help="generations after generation 0")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="time at this batch size instead of the recipe's (when the recipe's does not fit in memory);"
        " the step time is scaled to the recipe's batch",
    )
    parser.add_argument("--out", default="runs/recipe-cost")
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # the fits below get their arguments from this script, not the command line
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}, torch {torch.__version__}")
    results = []
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for recipe in args.recipe or PAPER_RECIPES:
        result = run(recipe, args)
        results.append(result)
        print(json.dumps(result))
        (Path(args.out) / "results.json").write_text(json.dumps({"device": device, "results": results}, indent=1))
    print(
        "\n| recipe | precision | batch (timed) | s/step | images/s | s/sample | s/correction | generation 0 (h)"
        " | later generation (h) | evaluation per generation (h) | full run (h) |"
    )
    for r in results:
        print(
            f"| {r['recipe']} | {r['precision']} | {r['batch']} ({r['timed_batch']}) | {r['step_s']:.3f}"
            f" | {r['images_per_s']:.0f} | {r['sample_s']:.4f} | {r['correct_s']:.4f} | {r['generation0_h']:.2f}"
            f" | {r['later_generation_h']:.2f} | {r['evaluation_per_generation_h']:.2f} | {r['total_h']:.1f} |"
        )


if __name__ == "__main__":
    main()
