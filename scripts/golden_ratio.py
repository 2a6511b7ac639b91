"""The stationary error of the weighted mean against the real weight w (He, Xu & Cheng 2025;
docs/beyond.md "Weighted mixing").

Reads the grid folders that ``scripts/reproduce_results.sh --only golden_ratio`` writes (one per
k, a run per w and seed: ``<folder>/real_weight=<w>_seed=<s>/``), each run a
``recipes/golden_ratio.yaml`` fit: the mean of a Gaussian with known variance refitted each
generation on n new real points weighted w and k·n synthetic points weighted 1 − w. Per run, the
squared error per dimension ``w2²/dim`` (w2 is the distance of the fitted mean to the true one)
averaged over the generations ``burn-in..T``, in units of σ²/n; per (k, w) its mean over seeds with
the standard error, the theory (:func:`~sclc_lightning.theory.weighted_mixing_variance` averaged
over the same generations) and the paired difference to w* (the same seed draws the same real
points and the same sampling noise at every w). Writes into ``--out``:

- ``golden.csv``: one row per (k, w);
- ``golden.png``: measured (±2 standard errors) and theory against w, one panel per k, w* marked.

    .venv/bin/python scripts/golden_ratio.py runs/results/golden_ratio/k=* --out runs/results/golden_ratio/figure
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from sclc_lightning.report.summary import mean_se

POINT = re.compile(r"real_weight=(?P<w>[0-9.e+-]+)_seed=(?P<seed>\d+)$")


def _setting(run: Path) -> tuple[float, int, int, float]:
    """k (λ), n (real points per generation), the dimension and σ of the run, from its config."""
    import yaml

    config = yaml.safe_load((run / "config.yaml").read_text())
    loop, model = config["loop"], config["model"]["init_args"]
    if model.get("estimator") != "known" or loop.get("mode") != "fresh":
        raise SystemExit(f"golden_ratio.py: {run} is not a golden_ratio.yaml run (estimator known, mode fresh)")
    return (
        float(loop["synthetic_fraction"]),
        int(loop["mode_kwargs"]["real_per_generation"]),
        int(model["dim"]),
        float(model.get("target_std", 1.0)),
    )


def stationary_error(metrics: Path, dim: int, n: int, sigma: float, burn_in: int) -> tuple[list[int], float]:
    """The generations averaged and the mean of ``w2²/dim`` over them, in units of σ²/n."""
    rows = [(int(float(r["generation"])), float(r["w2"])) for r in csv.DictReader(open(metrics)) if r.get("w2")]
    late = [(g, w2) for g, w2 in rows if g >= burn_in]
    if not late:
        raise SystemExit(f"golden_ratio.py: {metrics} has no generation >= {burn_in}")
    return [g for g, _ in late], statistics.fmean(w2 * w2 / dim for _, w2 in late) / (sigma * sigma / n)


def theory(generations: list[int], weight: float, k: float, n: int) -> float:
    """V_t / (σ²/n) averaged over ``generations``."""
    from sclc_lightning.theory import weighted_mixing_variance

    return statistics.fmean(weighted_mixing_variance(t, weight, k, n) * n for t in generations)


def read_folder(folder: Path, burn_in: int) -> tuple[float, dict[float, dict[int, float]], dict[float, float]]:
    """k, the stationary error by w and seed, and the theory by w."""
    errors: dict[float, dict[int, float]] = defaultdict(dict)
    expected: dict[float, float] = {}
    ks = set()
    for metrics in sorted(folder.glob("*/metrics.csv")):
        match = POINT.search(metrics.parent.name)
        if not match:
            continue
        k, n, dim, sigma = _setting(metrics.parent)
        ks.add(k)
        weight = float(match["w"])
        generations, value = stationary_error(metrics, dim, n, sigma, burn_in)
        errors[weight][int(match["seed"])] = value
        expected[weight] = theory(generations, weight, k, n)
    if len(ks) != 1:
        raise SystemExit(f"golden_ratio.py: {folder} holds runs of the k values {sorted(ks)}; give one folder per k")
    return ks.pop(), errors, expected


def summarise(k: float, errors: dict[float, dict[int, float]], expected: dict[float, float]) -> list[dict[str, Any]]:
    """One row per w: measured mean and standard error, theory, z, and the paired difference to w*
    (the grid's w nearest to the theory's w*)."""
    from sclc_lightning.theory import golden_weight

    best = min(errors, key=lambda w: abs(w - golden_weight(k)))
    rows = []
    for weight in sorted(errors):
        values = errors[weight]
        seeds = sorted(values)
        mean, se = mean_se([values[s] for s in seeds])
        gap, gap_se = mean_se([values[s] - errors[best][s] for s in seeds if s in errors[best]])
        gap_se = math.nan if weight == best else gap_se
        rows.append(
            {
                "k": k,
                "w": weight,
                "seeds": len(seeds),
                "error": mean,
                "se": se,
                "theory": expected[weight],
                "z": (mean - expected[weight]) / se if se > 0 else math.nan,
                "minus_w_star": gap,
                "minus_w_star_se": gap_se,
                "w_star": best,
                "unweighted": math.isclose(weight, 1 / (1 + k), abs_tol=1e-5),
            }
        )
    return rows


def draw(rows: list[dict[str, Any]], n_of: dict[float, int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sclc_lightning.theory import golden_weight

    ks = sorted({row["k"] for row in rows})
    figure, axes = plt.subplots(1, len(ks), figsize=(4.2 * len(ks), 3.6), squeeze=False)
    for ax, k in zip(axes[0], ks):
        mine = [row for row in rows if row["k"] == k]
        grid = [0.05 + i * 0.95 / 200 for i in range(201)]
        generations = list(range(int(mine[0].get("burn_in", 10)), int(mine[0].get("last", 30)) + 1))
        ax.plot(grid, [theory(generations, w, k, n_of[k]) for w in grid], "--", color="gray", label="theory")
        ax.errorbar(
            [row["w"] for row in mine],
            [row["error"] for row in mine],
            yerr=[2 * row["se"] for row in mine],
            fmt="o",
            ms=4,
            capsize=2,
            label=f"measured (±2 SE, {mine[0]['seeds']} seeds)",
        )
        ax.axvline(golden_weight(k), color="goldenrod", lw=1, label=f"w* = {golden_weight(k):.3f}")
        ax.axvline(1 / (1 + k), color="gray", lw=0.8, ls=":", label=f"unweighted 1/(1+k) = {1 / (1 + k):.3f}")
        ax.axhline(1.0, color="black", lw=0.6, ls="-.", label="fresh real data alone (σ²/n)")
        ax.set_ylim(0.4, 1.6)
        ax.set_xlabel("real weight w")
        ax.set_title(f"k = {k:g} synthetic per real")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("stationary E[(μ_t − μ)²] / (σ²/n)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="grid folders, one per k")
    parser.add_argument("--burn-in", type=int, default=10, help="first generation averaged (default 10)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    n_of: dict[float, int] = {}
    for folder in args.folders:
        k, errors, expected = read_folder(folder, args.burn_in)
        if not errors:
            raise SystemExit(f"golden_ratio.py: no real_weight=<w>_seed=<s> runs under {folder}")
        first = next(folder.glob("real_weight=*/config.yaml")).parent
        n_of[k] = _setting(first)[1]
        last = max(int(float(r["generation"])) for r in csv.DictReader(open(first / "metrics.csv")))
        for row in summarise(k, errors, expected):
            rows.append({**row, "burn_in": args.burn_in, "last": last})
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "golden.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    draw(rows, n_of, args.out / "golden.png")
    for row in rows:
        print(
            f"k={row['k']:g} w={row['w']:.3f}{' (w*)' if row['w'] == row['w_star'] else ''}"
            f"{' (unweighted)' if row['unweighted'] else ''}: {row['error']:.4f} ± {row['se']:.4f}"
            f" (theory {row['theory']:.4f}, z {row['z']:+.2f}); minus w*: {row['minus_w_star']:+.4f}"
            f" ± {row['minus_w_star_se']:.4f}"
        )
    print(f"golden_ratio.py: {args.out / 'golden.csv'} and {args.out / 'golden.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
