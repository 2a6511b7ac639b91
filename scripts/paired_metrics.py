"""Arms compared at one generation, paired by seed (docs/results.md "Motion with physics
self-correction").

Each run folder under the given grid folders (``<grid>/<point>_seed=<s>/metrics.csv``) belongs to
an arm: its grid folder's name and its point name without the seed (``loops/corrector=physics``).
For each metric: per arm, the mean over seeds with its standard error; and per pair of arms, the
mean of the per-seed differences with its standard error (the same seed shares its real data, so
the pair removes the data's share of the spread). Writes ``--out`` (CSV).

    python scripts/paired_metrics.py runs/results/motion/seeds runs/results/motion/seeds_real_only \\
        --metric fid --metric penetration --generation 5 --out runs/results/motion/paired.csv
"""

from __future__ import annotations

import argparse
import csv
import itertools
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from sclc_lightning.report.summary import mean_se

SEED = re.compile(r"_?seed=(?P<seed>\d+)$")


def read_arms(folders: list[Path], metrics: list[str], generation: int) -> dict[str, dict[int, dict[str, float]]]:
    """``{arm: {seed: {metric: value at generation}}}``."""
    arms: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
    for folder in folders:
        for path in sorted(folder.glob("*/metrics.csv")):
            match = SEED.search(path.parent.name)
            if not match:
                continue
            point = path.parent.name[: match.start()]
            arm = f"{folder.name}/{point}" if point else folder.name
            rows = {int(float(r["generation"])): r for r in csv.DictReader(open(path)) if r.get(metrics[0])}
            if generation not in rows:
                raise SystemExit(f"paired_metrics.py: {path} has no generation {generation} with `{metrics[0]}`")
            arms[arm][int(match["seed"])] = {m: float(rows[generation][m]) for m in metrics}
    if not arms:
        raise SystemExit(f"paired_metrics.py: no <point>_seed=<s>/metrics.csv under {[str(f) for f in folders]}")
    return arms


def compare(arms: dict[str, dict[int, dict[str, float]]], metrics: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for metric in metrics:
        for arm, seeds in arms.items():
            mean, se = mean_se([values[metric] for values in seeds.values()])
            rows.append({"metric": metric, "arm": arm, "minus": "", "seeds": len(seeds), "mean": mean, "se": se})
        for a, b in itertools.combinations(arms, 2):
            shared = sorted(set(arms[a]) & set(arms[b]))
            if len(shared) < 2:
                continue
            mean, se = mean_se([arms[a][s][metric] - arms[b][s][metric] for s in shared])
            rows.append({"metric": metric, "arm": a, "minus": b, "seeds": len(shared), "mean": mean, "se": se})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="grid folders")
    parser.add_argument("--metric", action="append", required=True, help="a metric (repeat for more)")
    parser.add_argument("--generation", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write")
    args = parser.parse_args(argv)
    rows = compare(read_arms(args.folders, args.metric, args.generation), args.metric)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        label = row["arm"] + (f" − {row['minus']}" if row["minus"] else "")
        z = f", {row['mean'] / row['se']:+.1f} SE" if row["minus"] and row["se"] > 0 else ""
        print(f"{row['metric']}: {label}: {row['mean']:.4g} ± {row['se']:.2g} ({row['seeds']} seeds{z})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
