"""``sclc report`` on a long run: a ``metrics.csv`` of ``--rows`` generations (default 1,000,000).

Writes one run folder (``config.yaml`` and a ``metrics.csv`` of four metrics, one with a name
that starts a formula) and times ``sclc report`` on it in a fresh process, as a user runs it
(target: within 60 s for a million rows).

Usage: ``python benchmarks/report_cost.py [--rows 1000000]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sclc-report-cost-"))
    run = folder / "run"
    run.mkdir()
    (run / "config.yaml").write_text("loop:\n  synthetic_fraction: 1.0\n  mode: replace\n  seed: 0\n")
    with open(run / "metrics.csv", "w") as handle:
        handle.write('generation,sigma,w2,"=HYPERLINK(""http://x"")",num_synthetic\n')
        for g in range(args.rows):
            handle.write(f"{g},{1 / (1 + g * 1e-5):.6g},{(g % 997) / 997:.6g},{g % 7},10\n")
    size = (run / "metrics.csv").stat().st_size / 1e6
    sclc = str(Path(sys.executable).parent / "sclc")
    start = time.perf_counter()
    subprocess.run([sclc, "report", str(run), "--out", str(folder / "report")], check=True)
    seconds = time.perf_counter() - start
    print(f"{args.rows} rows ({size:.0f} MB): sclc report in {seconds:.1f} s (target: 60 s)")


if __name__ == "__main__":
    main()
