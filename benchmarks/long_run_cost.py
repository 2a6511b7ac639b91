"""Whether a generation costs the same at the end of a long run as at its start.

The exact Gaussian of the theory (``GaussianModel``) on n = 10 real points, replace mode (10
synthetic points per generation), ``GenerationCSV`` writing ``metrics.csv``, ``--generations``
generations in one fit, no logger, no progress bar. A callback times every generation (from one
``on_train_epoch_end`` to the next); the script prints the median time of generations 100–200 and
of the last 100, and their ratio (target: at most 1.2 for 5,000 generations): the per-generation
bookkeeping (manifest, ``metrics.csv``, ``history.jsonl``) must not grow with the run. The
ratio of one run moves with the machine's load over its minute (±40 % here), so ``--repeats``
runs it several times and prints the median of the ratios too.

Usage: ``python benchmarks/long_run_cost.py [--generations 5000] [--repeats 3] [--profile out.prof]``
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from sclc_lightning import GenerationCSV, SelfConsumingLoop
from sclc_lightning.models import GaussianModel


class Clock(pl.Callback):
    """The wall time of every generation."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.ends.append(time.perf_counter())


def run(generations: int, folder: Path) -> list[float]:
    clock = Clock()
    loop = SelfConsumingLoop(1.0, generations, mode="replace", output_dir=folder / "synthetic", dry_run=False)
    trainer = pl.Trainer(
        callbacks=[loop, GenerationCSV(), clock],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=str(folder),
        accelerator="cpu",
    )
    points = torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    trainer.fit(GaussianModel(dim=2), train_dataloaders=DataLoader(points, batch_size=10))
    return [b - a for a, b in zip(clock.ends, clock.ends[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--profile", default=None, help="write a cProfile of the (first) run here")
    args = parser.parse_args()
    ratios = []
    for repeat in range(args.repeats):
        folder = Path(tempfile.mkdtemp(prefix="sclc-long-run-"))
        profiler = cProfile.Profile() if args.profile and repeat == 0 else None
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        times = run(args.generations, folder)
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        early, late = statistics.median(times[100:200]), statistics.median(times[-100:])
        ratios.append(late / early)
        print(
            f"{args.generations} generations in {time.perf_counter() - start:.1f} s: median per generation"
            f" {1e3 * early:.1f} ms (generations 100-200) vs {1e3 * late:.1f} ms (last 100), ratio {late / early:.2f}"
        )
    if args.repeats > 1:
        shown = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"ratios {shown}: median {statistics.median(ratios):.2f} over {args.repeats} runs")


if __name__ == "__main__":
    main()
