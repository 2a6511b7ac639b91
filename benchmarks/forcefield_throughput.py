"""Throughput of the force-field corrector: MMFF-relaxed conformers per second, per worker process.

Embeds one conformer (ETKDG + MMFF) of each of ``--molecules`` molecules RDKit ships, puts
``--copies`` noisy copies of each (0.2 Å on every atom, as a poor generator would) in one padded
batch, then times ``ForceFieldCorrector.relax`` with 1, 2, ... ``--max-workers`` worker processes,
``--repeats`` times each (median), checks that every worker count gives the same result, and
prints the share of conformers with sane bonds before and after.

Usage: ``python benchmarks/forcefield_throughput.py [--molecules 30] [--copies 8] [--steps 200]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sclc_lightning._process import default_workers
from sclc_lightning.correctors import ForceFieldCorrector
from sclc_lightning.datasets.molecules import embed_conformer, shipped_smiles
from sclc_lightning.metrics.conformers import sane_bond_share


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--molecules", type=int, default=30)
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--max-heavy-atoms", type=int, default=10)
    parser.add_argument("--max-workers", type=int, default=default_workers())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    molecules = [
        embed_conformer(s, seed=0) for s in shipped_smiles(args.molecules, max_heavy_atoms=args.max_heavy_atoms)
    ]
    size = max(m.num_atoms for m in molecules)
    generator = torch.Generator().manual_seed(0)
    graphs, noisy, owners = [], [], []
    for m in molecules:
        for _ in range(args.copies):
            pos = torch.zeros(size, 3)
            pos[: m.num_atoms] = m.conformers[0] + 0.2 * torch.randn(m.num_atoms, 3, generator=generator)
            graphs.append(m.graph(size))
            noisy.append(pos)
            owners.append(m)
    g, x = torch.stack(graphs), torch.stack(noisy)
    print(f"{len(x)} conformers of {len(molecules)} molecules (up to {size} atoms), {args.steps} MMFF steps each")
    print("workers  seconds  conformers/s  conformers/s per worker")
    reference = None
    for workers in range(1, args.max_workers + 1):
        corrector = ForceFieldCorrector(steps=args.steps, num_workers=workers if workers > 1 else 0)
        times, out = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = corrector.relax(g, x)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        rate = len(x) / seconds
        print(f"{workers:7d}  {seconds:7.2f}  {rate:12.1f}  {rate / workers:23.1f}")
        assert out is not None
        if reference is None:
            reference = out
        assert torch.equal(out, reference), "results differ between worker counts"
    assert reference is not None

    def sane(conformers: torch.Tensor) -> float:
        shares = [sane_bond_share(m, c[None, : m.num_atoms].float()) for m, c in zip(owners, conformers)]
        return sum(shares) / len(shares)

    print(f"sane bonds: before {sane(x):.3f}, after {sane(reference):.3f}")


if __name__ == "__main__":
    main()
