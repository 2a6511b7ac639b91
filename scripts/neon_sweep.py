"""Neon on eight Gaussians with a biased sampler: the sweep of w on a validation split, and the
base model against Neon at the chosen w on a test split (docs/model_correction.md).

A PointDDPM is trained on eight Gaussians (n = 2,000) and sampled with fewer denoising steps than
it was trained with (`sampling_steps`, the biased sampler). Neon fine-tunes a copy on m of those
samples (its own Adam, `--finetune-steps` steps) to θ_s, and sets θ = (1 + w)θ_r − wθ_s for each
w of the sweep; the Fréchet distance of 20,000 samples (biased sampler, the same noise for every
w) to 20,000 validation points chooses w, and the test split (other points, other sampler noise)
compares the base model (w = 0) with Neon at that w. One row per seed and w in `sweep.csv`, the
verdict per seed in `summary.csv`, a figure in `sweep.png`.

    .venv/bin/python scripts/neon_sweep.py --out runs/neon_sweep               # the page's setting
    .venv/bin/python scripts/neon_sweep.py --out /tmp/n --epochs 20 --weights 0 0.5 --seeds 0   # a smoke run
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import default_collate


def run_seed(seed: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    import lightning.pytorch as pl

    from sclc_lightning.correctors import NeonCorrector
    from sclc_lightning.datasets.toy import EightGaussiansDataModule
    from sclc_lightning.metrics import frechet_distance
    from sclc_lightning.models import PointDDPM

    data = EightGaussiansDataModule(n=2000, n_test=2000, batch_size=256, seed=seed)
    data.setup("fit")
    pl.seed_everything(seed, verbose=False)
    model = PointDDPM(dim=2, hidden=128, layers=3, timesteps=100, sampling_steps=100)
    trainer = pl.Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    model.eval()
    validation = data.draw(args.eval_points, torch.Generator().manual_seed(10_000 + seed))
    test = data.draw(args.eval_points, torch.Generator().manual_seed(20_000 + seed))

    def frechet(module: Any, reference: torch.Tensor, noise_seed: int) -> float:
        with torch.no_grad():
            points = module.sample(
                args.eval_points, generator=torch.Generator().manual_seed(noise_seed), sampling_steps=args.sampler_steps
            )
        return float(frechet_distance(points, reference))

    reference = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        own = model.sample(
            args.samples, generator=torch.Generator().manual_seed(30_000 + seed), sampling_steps=args.sampler_steps
        )
    rows = []
    for weight in args.weights:
        neon = NeonCorrector(
            weight=weight, num_samples=args.samples, steps=args.finetune_steps, lr=args.lr, batch_size=256
        )
        state = neon.correct_model(
            model,
            items=list(own),
            collate=default_collate,
            reference=reference,
            generation=0,
            generator=torch.Generator().manual_seed(40_000 + seed),
        )
        corrected = PointDDPM(dim=2, hidden=128, layers=3, timesteps=100, sampling_steps=100)
        corrected.load_state_dict(state)
        corrected.eval()
        rows.append(
            {
                "seed": seed,
                "w": weight,
                "frechet_validation": frechet(corrected, validation, 50_000 + seed),
                "frechet_test": frechet(corrected, test, 60_000 + seed),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--sampler-steps", type=int, default=10)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--eval-points", type=int, default=20_000)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0])
    args = parser.parse_args(argv)
    if 0.0 not in args.weights:
        parser.error("--weights must include 0 (the base model).")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = [row for seed in args.seeds for row in run_seed(seed, args)]
    with open(args.out / "sweep.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = []
    for seed in args.seeds:
        mine = [r for r in rows if r["seed"] == seed]
        base = next(r for r in mine if r["w"] == 0.0)
        chosen = min(mine, key=lambda r: r["frechet_validation"])
        summary.append(
            {
                "seed": seed,
                "chosen_w": chosen["w"],
                "base_test": base["frechet_test"],
                "neon_test": chosen["frechet_test"],
                "lower": chosen["frechet_test"] < base["frechet_test"],
            }
        )
    with open(args.out / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    _plot(rows, args.out / "sweep.png")
    for row in summary:
        print(
            f"seed {row['seed']}: w = {row['chosen_w']:g} chosen on validation; test Fréchet {row['base_test']:.4f}"
            f" (base) -> {row['neon_test']:.4f} (Neon)"
        )
    print(f"neon_sweep: {len(rows)} rows in {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for seed in sorted({r["seed"] for r in rows}):
        mine = [r for r in rows if r["seed"] == seed]
        line = ax.plot(
            [r["w"] for r in mine],
            [r["frechet_validation"] for r in mine],
            marker="o",
            label=f"seed {seed}: validation",
        )[0]
        ax.plot(
            [r["w"] for r in mine],
            [r["frechet_test"] for r in mine],
            linestyle="--",
            color=line.get_color(),
            label=f"seed {seed}: test",
        )
    ax.set(
        xlabel="w (Neon)", ylabel="Fréchet distance to held-out data", title="Neon on eight Gaussians, 10-step sampler"
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
