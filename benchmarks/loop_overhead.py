"""Overhead of SelfConsumingLoop over plain ``Trainer.fit``, and a 100-generation run.

1. The loop with λ = 0 and the identity corrector versus plain ``Trainer.fit`` on the same
   data, model and number of optimizer steps, alternated in one process; the ratio of median
   wall times is reported (target: at most 1.05).
2. Wall time of a 100-generation self-consuming run of a tiny model (the exact Gaussian, λ = 0.5,
   optimal-transport correction), in-process.

Usage: ``python benchmarks/loop_overhead.py [--repeats 5] [--generations 10]``
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.correctors import IdentityCorrector
from sclc_lightning.models import GaussianModel


class TinyDenoiser(pl.LightningModule):
    """A 2-D DDPM-style noise predictor (3-layer MLP), the smallest realistic generative model."""

    def __init__(self, width: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(3, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 2)
        )

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        t = torch.rand(batch.shape[0], 1)
        noise = torch.randn_like(batch)
        noisy = (1 - t).sqrt() * batch + t.sqrt() * noise
        return (self.net(torch.cat([noisy, t], 1)) - noise).pow(2).mean()

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=1e-3)

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None, conditions: Any = None) -> Tensor:
        return torch.randn(num_samples, 2, generator=generator)


def _trainer(root: str, callbacks: list[Any], **kwargs: Any) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=root,
        callbacks=callbacks,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def overhead(repeats: int, generations: int, batches: int, batch_size: int) -> tuple[list[float], list[float], int]:
    points = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(0))
    steps = (generations + 1) * batches
    plain_times, loop_times = [], []
    for _ in range(repeats):
        for kind in ("plain", "loop"):
            torch.manual_seed(0)
            model = TinyDenoiser()
            data = DataLoader(points, batch_size=batch_size, shuffle=True)
            with tempfile.TemporaryDirectory() as root:
                if kind == "plain":
                    trainer = _trainer(root, [], max_steps=steps)
                else:
                    loop = SelfConsumingLoop(
                        0.0,
                        generations,
                        images_per_generation=batches * batch_size,
                        corrector=IdentityCorrector(),
                        output_dir=Path(root) / "synthetic",
                    )
                    trainer = _trainer(root, [loop], max_epochs=-1)
                start = time.perf_counter()
                trainer.fit(model, train_dataloaders=data)
                elapsed = time.perf_counter() - start
            assert trainer.global_step == steps, (kind, trainer.global_step, steps)
            (plain_times if kind == "plain" else loop_times).append(elapsed)
    return plain_times, loop_times, steps


def hundred_generations() -> float:
    points = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as root:
        loop = SelfConsumingLoop(
            0.5, 100, images_per_generation=None, corrector="optimal_transport", output_dir=Path(root) / "s"
        )
        trainer = _trainer(root, [loop], max_epochs=-1)
        start = time.perf_counter()
        trainer.fit(GaussianModel(2), train_dataloaders=DataLoader(points, batch_size=50))
        elapsed = time.perf_counter() - start
        assert len(loop.history) == 101
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--batches", type=int, default=50, help="optimizer steps per generation")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    plain, loop, steps = overhead(args.repeats, args.generations, args.batches, args.batch_size)
    ratio = statistics.median(loop) / statistics.median(plain)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"device: {device}, torch {torch.__version__}, lightning {pl.__version__}")
    shape = f"{args.generations + 1} generations x {args.batches} batches of {args.batch_size}"
    print(f"optimizer steps per fit: {steps} ({shape})")
    print(f"plain Trainer.fit  median {statistics.median(plain):.2f} s  runs {[round(t, 2) for t in plain]}")
    print(f"SelfConsumingLoop  median {statistics.median(loop):.2f} s  runs {[round(t, 2) for t in loop]}")
    print(f"ratio loop / plain: {ratio:.3f}  (target <= 1.05)")
    print(f"100-generation run of the exact Gaussian (n=100, lambda=0.5, OT): {hundred_generations():.1f} s")


if __name__ == "__main__":
    main()
