"""Neon's gain over the base model, paired by seed, from the sweeps of ``scripts/neon_sweep.py``
(docs/model_correction.md "Eight Gaussians, a DDPM with a biased sampler").

For each sweep folder (its ``sweep.csv``: one row per seed and w, the Fréchet distance on the
validation and the test split): per w, the mean over seeds of the test gain ``base − Neon``
(``w = 0`` is the base model, the same seed's) with its standard error; and the gain at the w
each seed chose on validation. Writes ``gain.csv`` and ``gain.png`` (the mean gain against w,
±2 standard errors, one line per folder) into ``--out``.

    python scripts/neon_gain.py runs/neon_sweep/default runs/neon_sweep/long --out runs/neon_sweep/gain
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from sclc_lightning.report.summary import mean_se


def read_sweep(folder: Path) -> dict[int, dict[float, tuple[float, float]]]:
    """(validation, test) Fréchet distance by seed and w."""
    path = folder / "sweep.csv"
    if not path.is_file():
        raise SystemExit(f"neon_gain.py: {path} does not exist (run scripts/neon_sweep.py --out {folder})")
    found: dict[int, dict[float, tuple[float, float]]] = defaultdict(dict)
    for row in csv.DictReader(open(path)):
        found[int(row["seed"])][float(row["w"])] = (float(row["frechet_validation"]), float(row["frechet_test"]))
    for seed, sweep in found.items():
        if 0.0 not in sweep:
            raise SystemExit(f"neon_gain.py: {path}: seed {seed} has no w = 0 (the base model)")
    return found


def summarise(name: str, sweeps: dict[int, dict[float, tuple[float, float]]]) -> list[dict[str, Any]]:
    """Rows of the mean test gain per w, and one for the w chosen on validation."""
    seeds = sorted(sweeps)
    weights = sorted(set.intersection(*(set(sweeps[s]) for s in seeds)))
    rows = []
    for weight in weights:
        gains = [sweeps[s][0.0][1] - sweeps[s][weight][1] for s in seeds]
        mean, se = mean_se(gains)
        rows.append(
            {
                "sweep": name,
                "w": weight,
                "seeds": len(seeds),
                "gain": mean,
                "gain_se": se,
                "wins": sum(g > 0 for g in gains),
            }
        )
    chosen = [min(weights, key=lambda w: sweeps[s][w][0]) for s in seeds]
    gains = [sweeps[s][0.0][1] - sweeps[s][w][1] for s, w in zip(seeds, chosen)]
    mean, se = mean_se(gains)
    relative = statistics.fmean(g / sweeps[s][0.0][1] for s, g in zip(seeds, gains))
    rows.append(
        {
            "sweep": name,
            "w": "chosen on validation: " + " ".join(f"{w:g}" for w in chosen),
            "seeds": len(seeds),
            "gain": mean,
            "gain_se": se,
            "wins": sum(g > 0 for g in gains),
            "relative_gain": relative,
        }
    )
    return rows


def draw(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r["sweep"] for r in rows):
        mine = [r for r in rows if r["sweep"] == name and not isinstance(r["w"], str)]
        ax.errorbar(
            [r["w"] for r in mine],
            [r["gain"] for r in mine],
            yerr=[2 * r["gain_se"] for r in mine],
            marker="o",
            capsize=2,
            label=f"{name} ({mine[0]['seeds']} seeds, ±2 SE)",
        )
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set(
        xlabel="w (Neon)", ylabel="test Fréchet: base − Neon (higher: Neon better)", title="Neon's gain, paired by seed"
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="scripts/neon_sweep.py --out folders")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = [row for folder in args.folders for row in summarise(folder.name, read_sweep(folder))]
    args.out.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with open(args.out / "gain.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    draw(rows, args.out / "gain.png")
    for row in rows:
        w = row["w"] if isinstance(row["w"], str) else f"w = {row['w']:g}"
        print(
            f"{row['sweep']}, {w}: gain {row['gain']:+.4f} ± {row['gain_se']:.4f},"
            f" better on {row['wins']}/{row['seeds']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
