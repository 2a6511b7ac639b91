"""A one-point ``sclc grid`` against the same ``sclc fit``, both as cold processes.

Alternates ``sclc fit --config RECIPE`` and ``sclc grid --config RECIPE`` (one point, no axes)
``--repeats`` times and prints the median wall time of each, their ratio (target: at most 1.2)
and, for the grid, the point's own time inside its worker (``point.json``): the difference is the
grid's own cost (its process, the worker's start and end).

Usage: ``python benchmarks/grid_overhead.py [--recipe recipes/eight_gaussians_ddpm.yaml] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "eight_gaussians_ddpm.yaml"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sclc = str(Path(sys.executable).parent / "sclc")
    folder = Path(tempfile.mkdtemp(prefix="sclc-grid-overhead-"))
    fits, grids, points = [], [], []
    for index in range(args.repeats):
        fits.append(_timed([sclc, "fit", "--config", args.recipe, "--run_dir", str(folder / f"fit{index}")]))
        out = folder / f"grid{index}"
        grids.append(_timed([sclc, "grid", "--config", args.recipe, "--out", str(out)]))
        (point,) = out.glob("*/point.json")
        points.append(float(json.loads(point.read_text())["seconds"]))
        print(f"repeat {index}: fit {fits[-1]:.1f} s, grid {grids[-1]:.1f} s (its point {points[-1]:.1f} s)")
    fit, grid, point = statistics.median(fits), statistics.median(grids), statistics.median(points)
    print(
        f"{Path(args.recipe).name}: sclc fit median {fit:.1f} s, one-point sclc grid median {grid:.1f} s,"
        f" ratio {grid / fit:.2f}; the point inside its worker {point:.1f} s, the grid's own cost {grid - point:.1f} s"
    )


if __name__ == "__main__":
    main()
