"""Throughput of the physics corrector: simulated motions per second, per worker process.

Generates ``--motions`` ground-truth motions of the planar biped (``--frames`` frames at 20 fps),
perturbs them (noise, 10 cm into the floor) as a poor generator would, then times
``PhysicsCorrector.simulate`` with 1, 2, ... ``--max-workers`` worker processes, ``--repeats``
times each (median), and checks that every worker count gives the same result.

Usage: ``python benchmarks/physics_throughput.py [--motions 256] [--frames 32] [--max-workers N]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from sclc_lightning._process import default_workers
from sclc_lightning.correctors import PhysicsCorrector
from sclc_lightning.physics import generate_motions, physics_violations


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--motions", type=int, default=256)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--max-workers", type=int, default=default_workers())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    labels = np.arange(args.motions) % 4
    start = time.perf_counter()
    real = torch.from_numpy(generate_motions(labels.tolist(), args.frames, seed=0, num_workers=args.max_workers))
    print(f"generated {args.motions} ground-truth motions in {time.perf_counter() - start:.2f} s")
    noisy = real + 0.05 * torch.randn(real.shape, generator=torch.Generator().manual_seed(0))
    noisy[:, :, 1] -= 0.1
    reference = None
    print("workers  seconds  motions/s  motions/s per worker  frames/s")
    for workers in range(1, args.max_workers + 1):
        corrector = PhysicsCorrector(num_workers=workers if workers > 1 else 0)
        times, out = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = corrector.simulate(noisy)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        rate = args.motions / seconds
        print(f"{workers:7d}  {seconds:7.2f}  {rate:9.1f}  {rate / workers:20.1f}  {rate * args.frames:8.0f}")
        assert out is not None
        if reference is None:
            reference = out
        assert torch.equal(out, reference), "results differ between worker counts"
    before, after = physics_violations(noisy.numpy()), physics_violations(reference.numpy())
    for key in before:
        print(f"{key:12s} before {before[key].mean():.4f}  after {after[key].mean():.4f}")


if __name__ == "__main__":
    main()
