"""How long each generation waits for its first batch: DataLoader workers across generations.

A loader with ``num_workers`` workers and ``persistent_workers=True`` in the user's DataModule;
the loop runs ``--generations`` generations under ``ddp_spawn`` with two CPU processes (or
``--strategy ddp``, which relaunches this script per rank). Each rank records, for every
generation, the seconds from the epoch's start to its first batch: the loader's start (worker
processes started and the first batch read), which the loop's own work (sampling, writing)
does not enter. The dataset's items cost ``--item-ms`` of work each, so that workers are worth
having.

``--fresh-loaders`` measures the loop as it was before it kept the workers: a new loader, and
new workers, every generation.

Usage: ``python benchmarks/loader_start.py [--workers 4] [--generations 4] [--strategy ddp_spawn] [--fresh-loaders]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.environments.lightning import find_free_network_port
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from sclc_lightning import SelfConsumingLoop


class SlowPoints(Dataset[Tensor]):
    """2-D points whose reading costs ``item_ms`` of busy work (a decode, a transform)."""

    def __init__(self, n: int, item_ms: float) -> None:
        self.points = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
        self.item_ms = item_ms

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> Tensor:
        end = time.perf_counter() + self.item_ms / 1000
        while time.perf_counter() < end:
            pass
        return self.points[index]


class Points(pl.LightningDataModule):
    def __init__(self, n: int, workers: int, item_ms: float) -> None:
        super().__init__()
        self.n, self.workers, self.item_ms = n, workers, item_ms

    def train_dataloader(self) -> DataLoader[Tensor]:
        return DataLoader(
            SlowPoints(self.n, self.item_ms),
            batch_size=32,
            shuffle=True,
            num_workers=self.workers,
            persistent_workers=self.workers > 0,
        )


class Gaussian(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(2))

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        return ((batch - self.mean) ** 2).sum(1).mean()

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
        return (self.mean + torch.randn(num_samples, 2, generator=generator)).detach()


class FirstBatch(pl.Callback):
    """Writes, per rank, the seconds from each epoch's start to its first batch."""

    def __init__(self, folder: str) -> None:
        self.folder, self.start, self.waits = folder, 0.0, []  # type: ignore[var-annotated]

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, index: int) -> None:
        if index == 0:
            self.waits.append(time.perf_counter() - self.start)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        Path(self.folder, f"rank{trainer.global_rank}.json").write_text(json.dumps(self.waits))


def run(folder: str, workers: int, generations: int, strategy: str, item_ms: float) -> list[list[float]]:
    """The waits of every rank, one per generation."""
    os.environ.setdefault("MASTER_PORT", str(find_free_network_port()))
    loop = SelfConsumingLoop(0.5, generations, images_per_generation=512, output_dir=Path(folder) / "s")
    trainer = pl.Trainer(
        default_root_dir=folder,
        accelerator="cpu",
        devices=2,
        strategy=strategy,
        max_epochs=-1,
        callbacks=[loop, FirstBatch(folder)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Gaussian(), datamodule=Points(2048, workers, item_ms))
    if trainer.global_rank != 0:
        return []
    return [json.loads(Path(folder, f"rank{r}.json").read_text()) for r in range(2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--strategy", default="ddp_spawn", choices=["ddp_spawn", "ddp"])
    parser.add_argument("--item-ms", type=float, default=0.2)
    parser.add_argument("--out", default=None, help="folder of the run (default: a temporary one)")
    parser.add_argument("--fresh-loaders", action="store_true", help="new workers every generation (the old way)")
    args = parser.parse_args()
    if args.fresh_loaders:
        from sclc_lightning.loop.loader import PersistentLoader

        PersistentLoader.wanted = staticmethod(lambda template: False)  # type: ignore[method-assign]
    folder = args.out or os.environ.get("SCLC_BENCH_DIR") or tempfile.mkdtemp(prefix="sclc-loader-")
    os.environ["SCLC_BENCH_DIR"] = folder  # ddp relaunches this script: every rank uses one folder
    waits = run(folder, args.workers, args.generations, args.strategy, args.item_ms)
    if not waits:
        return
    for rank, values in enumerate(waits):
        print(f"rank {rank}: " + ", ".join(f"g{g} {w:.2f} s" for g, w in enumerate(values)))
    later = [w for values in waits for w in values[1:]]
    how = "new workers every generation" if args.fresh_loaders else "persistent workers"
    print(
        f"{args.strategy}, {args.workers} workers, {how}: generation 0 {max(v[0] for v in waits):.2f} s,"
        f" later generations median {statistics.median(later):.2f} s, max {max(later):.2f} s"
    )


if __name__ == "__main__":
    main()
