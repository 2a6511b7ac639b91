"""Memory of accumulate mode as generations pile up: synthetic data is read lazily from disk.

A model samples 256-dimensional float32 points; n = 10,000 real points, λ = 1, so every
generation adds 10 MB of synthetic data and generation t trains on real ∪ t synthetic sets.
After each generation we read the process's anonymous resident memory (``RssAnon`` in
/proc/self/status: heap and tensors, not the page cache of memory-mapped shards). If earlier
generations were loaded into memory it would grow by about 10 MB per generation.

Usage: ``python benchmarks/accumulate_memory.py [--generations 30]``
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.utils.data import DataLoader

from sclc_lightning import SelfConsumingLoop


def rss_anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


class Linear(pl.LightningModule):
    def __init__(self, dim: int):
        super().__init__()
        self.layer = nn.Linear(dim, dim)

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        return (self.layer(batch) - batch).pow(2).mean()

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=1e-3)

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None, conditions: Any = None) -> Tensor:
        return torch.randn(num_samples, self.layer.in_features, generator=generator)


class Memory(Callback):
    def __init__(self) -> None:
        self.mb: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.mb.append(rss_anon_mb())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--generations", type=int, default=30)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=256)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    real = torch.randn(args.n, args.dim, generator=torch.Generator().manual_seed(0))
    memory = Memory()
    with tempfile.TemporaryDirectory() as root:
        loop = SelfConsumingLoop(
            1.0, args.generations, images_per_generation=2048, mode="accumulate", output_dir=Path(root) / "s"
        )
        trainer = pl.Trainer(
            default_root_dir=root,
            callbacks=[loop, memory],
            max_epochs=-1,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(Linear(args.dim), train_dataloaders=DataLoader(real, batch_size=256, shuffle=True))
        on_disk = sum(p.stat().st_size for p in (Path(root) / "s").rglob("*.safetensors")) / 2**20
    per_gen = args.n * args.dim * 4 / 2**20
    print(f"synthetic data on disk after {args.generations} generations: {on_disk:.0f} MB")
    print(f"({per_gen:.1f} MB per generation)")
    for g in (1, 2, 5, 10, 20, args.generations):
        if g < len(memory.mb):
            print(f"  after generation {g:3d}: RssAnon {memory.mb[g]:.0f} MB")
    growth = memory.mb[-1] - memory.mb[2]
    eager = per_gen * (args.generations - 2)
    print(f"growth from generation 2 to {args.generations}: {growth:+.0f} MB (eager loading would add ~{eager:.0f} MB)")


if __name__ == "__main__":
    main()
