"""What importing sclc-lightning adds over ``import lightning.pytorch``, in cold processes.

Alternates, ``--repeats`` times, three fresh interpreters: ``import lightning.pytorch``;
``import lightning.pytorch`` then ``from sclc_lightning import SelfConsumingLoop, GenerationCSV``
(what a user of the callback runs); and ``import sclc_lightning`` alone. Prints the median of
each, the loop's cost over Lightning (target: at most 0.5 s) and the heavy libraries each loads.

Usage: ``python benchmarks/import_cost.py [--repeats 7]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "lightning", "sklearn", "matplotlib", "scipy", "diffusers", "ot", "mujoco", "kmedoids")
CASES = {
    "lightning": "import lightning.pytorch",
    "lightning + loop": "import lightning.pytorch\nfrom sclc_lightning import SelfConsumingLoop, GenerationCSV",
    "sclc_lightning alone": "import sclc_lightning",
}


def _run(code: str) -> tuple[float, list[str]]:
    probe = f"import sys, json\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - start, json.loads(out.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    _run(CASES["lightning + loop"])  # warm the file cache once
    times: dict[str, list[float]] = {name: [] for name in CASES}
    loaded: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for name, code in CASES.items():
            seconds, loaded[name] = _run(code)
            times[name].append(seconds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name:22s} median {median:.2f} s (min {min(times[name]):.2f}), loads {', '.join(loaded[name]) or '-'}")
    print(f"the loop over Lightning: {medians['lightning + loop'] - medians['lightning']:+.2f} s (target <= 0.5 s)")


if __name__ == "__main__":
    main()
