"""The real data's divergence from the retrained model under curation (Ferbach et al. 2024),
measured against the population theory (docs/beyond.md "Curation: users' choices optimise their
reward").

For each folder of ``curation_mixture`` runs (``<...>seed=<s>/metrics.csv`` with ``kl_to_data``,
the Monte Carlo KL(p_data ‖ p_t) on the held-out points, and ``max_mode_weight``): per generation,
the mean over seeds with its standard error. Beside them, for each ``--shares`` value s, the
population dynamics p_{t+1} = s p_data + (1 − s) p_t H_K (``sclc_lightning.theory.curated_retraining``,
at ``--points`` draws of the eight Gaussians, reward x₁) and the bound −log s
(``curation_kl_bound``). Writes ``stability.csv`` and ``stability.png`` into ``--out``.

    python scripts/curation_stability.py runs/results/curation/augment runs/results/curation/replace \\
        --out runs/results/curation/stability
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from sclc_lightning.datasets.toy import EightGaussiansDataModule
from sclc_lightning.report.summary import mean_se
from sclc_lightning.theory import curated_retraining, curation_kl_bound

SEED = re.compile(r"seed=(?P<seed>\d+)$")
METRICS = ("kl_to_data", "max_mode_weight")


def read(folder: Path) -> dict[int, dict[str, list[float]]]:
    """Per generation, each metric's values over the folder's seeds."""
    found: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    runs = [path for path in sorted(folder.glob("*/metrics.csv")) if SEED.search(path.parent.name)]
    if not runs:
        raise SystemExit(f"curation_stability.py: no <...>seed=<s>/metrics.csv under {folder}")
    for path in runs:
        rows = [row for row in csv.DictReader(open(path)) if row.get("kl_to_data")]
        if not rows:
            raise SystemExit(f"curation_stability.py: {path} has no `kl_to_data` (a GaussianMixtureModel run?)")
        for row in rows:
            for name in METRICS:
                if row.get(name):
                    value = float(row[name])
                    if not math.isfinite(value):
                        raise SystemExit(
                            f"curation_stability.py: {path} has `{name}` = {value} at generation {row['generation']}"
                            " (a diverged run: rerun it or leave its folder out)"
                        )
                    found[int(float(row["generation"]))][name].append(value)
    return found


def arm_names(folders: list[Path]) -> list[str]:
    """Each folder's label: its name, or as much of its path as tells it from the others."""
    for depth in range(1, max(len(folder.resolve().parts) for folder in folders) + 1):
        names = ["/".join(folder.resolve().parts[-depth:]) for folder in folders]
        if len(set(names)) == len(names):
            return names
    raise SystemExit(f"curation_stability.py: a folder is given twice: {[str(f) for f in folders]}")


def predict(shares: list[float], generations: int, args: argparse.Namespace) -> dict[float, dict[str, list[float]]]:
    """The population dynamics' KL and largest mode weight per generation, for each share."""
    data = EightGaussiansDataModule(n=1, n_test=1)
    generator = torch.Generator().manual_seed(args.seed)
    modes = torch.randint(8, (args.points,), generator=generator)
    points = data.centres[modes] + data.std * torch.randn(args.points, 2, generator=generator)
    predicted = {}
    for share in shares:
        ratios = curated_retraining(
            points[:, 0].double(), generations, share, args.candidates or None, args.beta, args.draws, generator
        )
        weights = torch.zeros(generations + 1, 8, dtype=torch.float64).index_add_(1, modes, ratios) / args.points
        predicted[share] = {
            "kl_to_data": (-ratios.log().mean(1)).tolist(),
            "max_mode_weight": weights.max(1).values.tolist(),
        }
    return predicted


def rows_of(
    folders: list[Path], measured: list[dict[int, dict[str, list[float]]]], predicted: dict[float, Any]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for arm, found in zip(arm_names(folders), measured):
        for generation in sorted(found):
            row: dict[str, Any] = {"arm": arm, "generation": generation, "seeds": len(found[generation]["kl_to_data"])}
            for name in METRICS:
                values = found[generation][name]
                row[name], row[f"{name}_se"] = mean_se(values) if values else (math.nan, math.nan)
            rows.append(row)
    for share, series in predicted.items():
        for generation, (kl, weight) in enumerate(zip(series["kl_to_data"], series["max_mode_weight"])):
            bound = curation_kl_bound(share) if share > 0 else math.inf
            rows.append(
                {"arm": f"theory s={share:g}", "generation": generation, "kl_to_data": kl, "max_mode_weight": weight}
                | {"bound": bound}
            )
    return rows


def draw(rows: list[dict[str, Any]], shares: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for arm in dict.fromkeys(r["arm"] for r in rows):
        mine = [r for r in rows if r["arm"] == arm and r["kl_to_data"] > 0]  # a log axis; the theory starts at 0
        if not mine:  # nothing to draw on a log axis (a Monte Carlo KL can be negative): the CSV has it
            print(f"curation_stability.py: {arm} has no positive KL to draw", file=sys.stderr)
            continue
        xs, ys = [r["generation"] for r in mine], [r["kl_to_data"] for r in mine]
        if arm.startswith("theory"):
            ax.plot(xs, ys, ls="--", lw=1.2, label=f"population dynamics, {arm[7:]}")
        else:
            errors = [2 * r["kl_to_data_se"] if r["seeds"] > 1 else 0.0 for r in mine]
            below = [min(e, 0.9 * y) for e, y in zip(errors, ys)]  # bars stay above 0 on the log axis
            label = f"{arm} ({mine[0]['seeds']} seeds, ±2 SE)"
            ax.errorbar(xs, ys, yerr=[below, errors], marker="o", ms=3, capsize=2, label=label)
    for share in shares:
        if share > 0:
            ax.axhline(curation_kl_bound(share), color="black", ls=":", lw=1, label=f"bound −log s, s={share:g}")
    ax.set_yscale("log")
    ax.set(xlabel="generation", ylabel="KL(p_data ‖ p_t), nats", title="Curation: the real data's divergence")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", type=Path, help="folders of curation_mixture runs, one per arm")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shares", type=float, nargs="*", default=[0.5], help="real-data shares s to predict")
    parser.add_argument(
        "--candidates", type=int, default=4, help="K, the candidates per kept point (0: the K → ∞ limit)"
    )
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--points", type=int, default=20_000, help="draws of p_data carrying the dynamics")
    parser.add_argument("--draws", type=int, default=4096, help="Monte Carlo candidate sets per generation")
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the dynamics' draws (default: a fresh one, printed)"
    )
    args = parser.parse_args(argv)
    if not all(0 <= share <= 1 for share in args.shares):
        parser.error(f"--shares must be real-data shares in [0, 1], got {args.shares}")
    for flag, value, least in (
        ("--candidates", args.candidates, 0),
        ("--points", args.points, 2),
        ("--draws", args.draws, 1),
    ):
        if value < least:
            parser.error(f"{flag} must be at least {least}, got {value}")
    if not math.isfinite(args.beta):
        parser.error(f"--beta must be a finite number, got {args.beta}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file; give a folder")
    if args.seed is None:  # no fixed default: a fresh seed, printed so that the figure can be redrawn
        args.seed = int(torch.seed() % 2**31)
        print(f"curation_stability.py: the population dynamics drawn with --seed {args.seed}")
    measured = [read(folder) for folder in args.folders]
    generations = max(max(found) for found in measured)
    rows = rows_of(args.folders, measured, predict(args.shares, generations, args))
    args.out.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with open(args.out / "stability.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    draw(rows, args.shares, args.out / "stability.png")
    for row in rows:
        if row["generation"] in (1, 5, 10, generations):
            spread = f" ± {row['kl_to_data_se']:.3g}" if row.get("seeds", 0) > 1 else ""
            print(
                f"{row['arm']}, generation {row['generation']}: KL {row['kl_to_data']:.4g}{spread},"
                f" largest mode weight {row['max_mode_weight']:.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
