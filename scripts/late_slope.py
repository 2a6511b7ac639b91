"""How fast a metric still moves late in a run: per run, the least-squares slope of the metric
against the generation over ``--start..T``; per folder, the mean slope over seeds with its
standard error, and the metric's mean over the first and the last ``--window`` generations of
that range. With two or more folders, the paired difference (same seed) of each later folder's
late-window mean to the first folder's (docs/results.md "Replace vs accumulate vs
accumulate-subsample").

    python scripts/late_slope.py runs/results/modes_long/accumulate runs/results/modes_long/subsample \\
        --metric w2 --square --start 50 --out runs/results/modes_long/slope.csv
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
from pathlib import Path
from typing import Any

from sclc_lightning.report.summary import mean_se

SEED = re.compile(r"seed=(?P<seed>\d+)$")


def series(metrics: Path, metric: str, square: bool) -> dict[int, float]:
    """The metric by generation (squared with ``square``)."""
    values = {}
    for row in csv.DictReader(open(metrics)):
        if row.get(metric):
            value = float(row[metric])
            values[int(float(row["generation"]))] = value * value if square else value
    return values


def slope(points: dict[int, float]) -> float:
    """Least-squares slope of value on generation."""
    xs, ys = list(points), list(points.values())
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def read(folder: Path, metric: str, square: bool, start: int, window: int) -> dict[int, dict[str, float]]:
    """Per seed: the slope over ``start..T`` and the early and late window means."""
    found: dict[int, dict[str, float]] = {}
    for metrics in sorted(folder.glob("*/metrics.csv")):
        match = SEED.search(metrics.parent.name)
        if not match:
            continue
        values = {g: v for g, v in series(metrics, metric, square).items() if g >= start}
        if len(values) < 2 * window:
            raise SystemExit(f"late_slope.py: {metrics}: {len(values)} generations from {start}, fewer than 2 windows")
        last = max(values)
        found[int(match["seed"])] = {
            "slope": slope(values),
            "early": statistics.fmean(values[g] for g in values if g < start + window),
            "late": statistics.fmean(values[g] for g in values if g > last - window),
            "last": last,
        }
    if not found:
        raise SystemExit(f"late_slope.py: no <...>seed=<s>/metrics.csv with `{metric}` under {folder}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--metric", default="w2")
    parser.add_argument("--square", action="store_true", help="use the metric's square (w2² for w2)")
    parser.add_argument("--start", type=int, default=50, help="first generation of the fit (default 50)")
    parser.add_argument("--window", type=int, default=50, help="generations in the early and late means")
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write")
    args = parser.parse_args(argv)
    runs = [read(folder, args.metric, args.square, args.start, args.window) for folder in args.folders]
    rows: list[dict[str, Any]] = []
    for folder, found in zip(args.folders, runs):
        seeds = sorted(found)
        row: dict[str, Any] = {"folder": str(folder), "seeds": len(seeds), "last": found[seeds[0]]["last"]}
        for key in ("slope", "early", "late"):
            row[key], row[f"{key}_se"] = mean_se([found[s][key] for s in seeds])
        row["slope_per_100"], row["slope_per_100_se"] = 100 * row["slope"], 100 * row["slope_se"]
        shared = [s for s in seeds if s in runs[0]]
        row["late_minus_first"], row["late_minus_first_se"] = mean_se(
            [found[s]["late"] - runs[0][s]["late"] for s in shared]
        )
        rows.append(row)
        print(
            f"{folder}: {len(seeds)} seeds, slope {row['slope_per_100']:+.4g} ± {row['slope_per_100_se']:.2g} per 100"
            f" generations; early {row['early']:.4g} ± {row['early_se']:.2g}, late {row['late']:.4g} ±"
            f" {row['late_se']:.2g}; late minus the first folder's {row['late_minus_first']:+.4g} ±"
            f" {row['late_minus_first_se']:.2g}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
