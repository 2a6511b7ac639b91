r"""The main job: model collapse and its correction on a Gaussian, on bundled (generated) data.

Three arms, each a :class:`~sclc_lightning.SelfConsumingLoop` around the same exactly-fitted
:class:`~sclc_lightning.models.GaussianModel`, over several seeds:

- ``real only`` (:math:`\lambda = 0`): the baseline, retrained on the real data each generation;
- ``self-consuming`` (``replace`` mode, :math:`\lambda = 1`, no correction): collapses, the
  fitted standard deviation shrinking by :math:`\alpha(n)` per generation in expectation
  (Bertrand et al. 2024, Prop. 1);
- ``self-correcting`` (the same with the optimal-transport corrector, :math:`\gamma = 1`,
  Gillman et al. 2024, §5): stays close to the data.

Run ``python -m sclc_lightning.demo --out runs/demo``; it writes ``demo.png`` and ``summary.csv``.
"""

from __future__ import annotations

import argparse
import csv
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from sclc_lightning._files import atomic_path
from sclc_lightning.loop import SelfConsumingLoop
from sclc_lightning.metrics.functional import gaussian_w2
from sclc_lightning.models.gaussian import GaussianModel
from sclc_lightning.theory import gaussian_collapse_rate

__all__ = ["ARMS", "main", "run_arm"]

ARMS: dict[str, dict[str, Any]] = {
    "real only (λ=0)": {"synthetic_fraction": 0.0, "mode": "augment", "corrector": None},
    "self-consuming (λ=1, replace)": {"synthetic_fraction": 1.0, "mode": "replace", "corrector": None},
    "self-correcting (λ=1, replace, OT γ=1)": {
        "synthetic_fraction": 1.0,
        "mode": "replace",
        "corrector": "optimal_transport",
        "corrector_kwargs": {"strength": 1.0},
    },
}


class _Track(Callback):
    """Records the fitted model's sigma and W2 to the true N(0, I) after each generation."""

    def __init__(self) -> None:
        self.sigma: list[float] = []
        self.w2: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert isinstance(pl_module, GaussianModel)
        self.sigma.append(pl_module.sigma)
        dim = pl_module.dim
        self.w2.append(gaussian_w2(pl_module.mean, pl_module.cov, torch.zeros(dim), torch.eye(dim)))


def run_arm(arm: dict[str, Any], n: int, dim: int, generations: int, seed: int, out: Path) -> _Track:
    """Train one arm for one seed; returns the per-generation sigma and W2."""
    real = torch.randn(n, dim, generator=torch.Generator().manual_seed(10_000 + seed))
    loop = SelfConsumingLoop(generations=generations, images_per_generation=None, seed=seed, output_dir=out, **arm)
    track = _Track()
    trainer = pl.Trainer(
        default_root_dir=str(out),
        callbacks=[loop, track],
        max_epochs=-1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(GaussianModel(dim), train_dataloaders=DataLoader(real, batch_size=n))  # type: ignore[arg-type]
    return track


def _plot(results: dict[str, list[_Track]], n: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for (name, tracks), colour in zip(results.items(), ("tab:green", "tab:red", "tab:blue")):
        for ax, key in zip(axes, ("sigma", "w2")):
            values = torch.tensor([getattr(t, key) for t in tracks])
            mean = values.mean(0)
            low, high = values.quantile(0.1, dim=0), values.quantile(0.9, dim=0)
            steps = range(values.shape[1])
            ax.plot(steps, mean, color=colour, label=name)
            ax.fill_between(steps, low, high, color=colour, alpha=0.15)
    # Bertrand et al. Prop. 1: without correction E[σ_t] = α(n)^t E[σ_0] (each dimension's σ
    # is a one-dimensional sample standard deviation), drawn from the measured σ_0.
    collapsing = next((tracks for name, tracks in results.items() if name.startswith("self-consuming")), None)
    if collapsing:
        start = float(torch.tensor([t.sigma[0] for t in collapsing]).mean())
        steps = range(len(collapsing[0].sigma))
        rate = gaussian_collapse_rate(n)
        theory = [start * rate**t for t in steps]
        axes[0].plot(steps, theory, color="tab:red", linestyle="--", linewidth=1, label="theory: α(n)^t σ₀")
    axes[0].axhline(1.0, color="black", linestyle=":", linewidth=1, label="true σ = 1")
    axes[0].set(xlabel="generation", ylabel="fitted σ (mean per dimension)", title="Model collapse", ylim=(0, None))
    axes[1].set(xlabel="generation", ylabel="W₂ to the true N(0, I)", title="Distance to the data distribution")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # generations are whole
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"Gaussian fitted exactly on n={n} points, mean and 10–90% band over {len(next(iter(results.values())))} seeds"
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the three arms and write the figure and a CSV summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--n", type=int, default=10, help="real points (small n collapses fast)")
    parser.add_argument("--dim", type=int, default=2)
    parser.add_argument("--generations", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", ".*configure_optimizers.*")
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results: dict[str, list[_Track]] = {}
    for index, (name, arm) in enumerate(ARMS.items()):
        results[name] = []
        for seed in range(args.seeds):
            folder = args.out / "synthetic" / f"{stamp}-arm{index}-seed{seed}"
            results[name].append(run_arm(arm, args.n, args.dim, args.generations, seed, folder))
        last = torch.tensor([t.sigma[-1] for t in results[name]])
        print(f"{name:42s} final σ {float(last.mean()):.3f} ± {float(last.std()):.3f}")
    with atomic_path(args.out / "summary.csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arm", "seed", "generation", "sigma", "w2"])
        for name, tracks in results.items():
            for seed, track in enumerate(tracks):
                for generation, (sigma, w2) in enumerate(zip(track.sigma, track.w2)):
                    writer.writerow([name, seed, generation, f"{sigma:.6f}", f"{w2:.6f}"])
    _plot(results, args.n, args.out / "demo.png")
    rate = gaussian_collapse_rate(args.n)
    print(
        f"theory: without correction E[σ_t] = α(n)^t σ_0 with α({args.n}) = {rate:.4f}"
        f" -> {rate**args.generations:.3f} after {args.generations} generations"
    )
    print(f"wrote {args.out / 'demo.png'} and {args.out / 'summary.csv'} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
