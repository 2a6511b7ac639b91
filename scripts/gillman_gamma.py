"""W2 against the correction strength γ for the Gillman Fig. 2 settings (docs/results.md).

Reads the grid folders written by ``scripts/reproduce_results.sh --only gillman_fig2`` (one run per
γ and seed, ``<folder>/strength=<γ>_seed=<s>/metrics.csv``) and writes, into ``--out``:

- ``gamma.csv``: per setting and γ, the mean W2 over the second half of the generations
  (mean and standard deviation over seeds) and its paired difference to γ = 0 (the same seed
  has the same 50 real points at every γ, so the difference removes the dataset's share of the
  spread);
- ``gamma.png``: both against γ, one line per setting.

    python scripts/gillman_gamma.py runs/results/gillman_fig2/{accumulate,augment,accumulate_true_target} \
        --out runs/results/gillman_fig2/gamma
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
from collections import defaultdict
from pathlib import Path

POINT = re.compile(r"strength=(?P<gamma>[0-9.e+-]+)_seed=(?P<seed>\d+)$")


def late_w2(metrics: Path) -> tuple[int, float]:
    """The last generation and the mean W2 over generations ``T/2 < t <= T``."""
    rows = [(int(float(r["generation"])), float(r["w2"])) for r in csv.DictReader(open(metrics)) if r.get("w2")]
    last = max(g for g, _ in rows)
    late = [w for g, w in rows if last / 2 < g <= last]
    return last, sum(late) / len(late)


def read_setting(folder: Path) -> dict[float, dict[int, float]]:
    """Late W2 by γ and seed."""
    found: dict[float, dict[int, float]] = defaultdict(dict)
    for metrics in sorted(folder.glob("*/metrics.csv")):
        match = POINT.search(metrics.parent.name)
        if match:
            found[float(match["gamma"])][int(match["seed"])] = late_w2(metrics)[1]
    if not found:
        raise SystemExit(f"gillman_gamma.py: no strength=<γ>_seed=<s> runs under {folder}")
    return found


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="one grid folder per setting")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    table = []
    for folder in args.folders:
        runs = read_setting(folder)
        base = runs.get(0.0, {})
        for gamma in sorted(runs):
            values = list(runs[gamma].values())
            paired = [w - base[s] for s, w in runs[gamma].items() if s in base]
            mean, std = _mean_std(values)
            diff, diff_std = _mean_std(paired) if paired else (float("nan"), float("nan"))
            table.append([folder.name, gamma, len(values), mean, std, diff, diff_std])
    with open(args.out / "gamma.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["setting", "gamma", "seeds", "late_w2_mean", "late_w2_std", "vs_gamma0_mean", "vs_gamma0_std"])
        for row in table:
            writer.writerow([row[0], row[1], row[2], *(f"{v:.4f}" for v in row[3:])])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for setting in dict.fromkeys(row[0] for row in table):
        rows = [row for row in table if row[0] == setting]
        gammas = [row[1] for row in rows]
        for ax, (mean_at, std_at) in zip(axes, ((3, 4), (5, 6))):
            means = [row[mean_at] for row in rows]
            stds = [row[std_at] for row in rows]
            line = ax.plot(gammas, means, marker="o", label=setting)[0]
            ax.fill_between(
                gammas,
                [m - s for m, s in zip(means, stds)],
                [m + s for m, s in zip(means, stds)],
                color=line.get_color(),
                alpha=0.15,
            )
    for ax in axes:
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_xlabel("γ (correction strength)")
        ax.grid(alpha=0.3)
    axes[0].set(ylabel="W₂, mean over generations T/2..T", title="W₂ late in the run (mean ± sd over seeds)")
    axes[1].set(ylabel="W₂(γ) − W₂(0), same seed", title="Paired difference to γ = 0 (mean ± sd)")
    axes[1].axhline(0.0, color="black", linewidth=0.8)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "gamma.png", dpi=110)
    print(f"gillman_gamma.py: wrote {args.out / 'gamma.csv'} and {args.out / 'gamma.png'}")


if __name__ == "__main__":
    main()
