"""What the real data's digest adds to the loop's start, on the sizes of the largest recipes.

Before generation 0 the loop reads every real item once (``scan_real_data``): it refuses NaN or
infinite values and hashes every field of every item, so that a resume with other real data is
refused. This script times that pass against the same pass without hashing (what the NaN check
alone cost before), on stand-ins of CIFAR-10 (50,000 images 3×32×32) and FFHQ-64 (70,000 images
3×64×64) made on the fly (nothing is downloaded), as float32 ``(image, label)`` items.

Usage: ``python benchmarks/real_digest_cost.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import DataLoader, Dataset

from sclc_lightning.items import ItemCodec, RealData
from sclc_lightning.loop.real_source import _Fields, scan_real_data


class StandIn(Dataset[tuple[torch.Tensor, int]]):
    """``size`` images of ``shape``, each computed from its index (no memory held)."""

    def __init__(self, size: int, shape: tuple[int, ...]) -> None:
        self.size, self.shape = size, shape

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.full(self.shape, (index % 255) / 127.5 - 1.0), index % 10


def nan_check_only(real: RealData, template: DataLoader) -> None:  # type: ignore[type-arg]
    """The pass as it was before the digest: read every item, check finiteness."""
    for data, _, _ in DataLoader(real.dataset, batch_size=512, collate_fn=_Fields(real.codec)):
        torch.isfinite(data.reshape(len(data), -1)).all(dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name, size, shape in (("CIFAR-10", 50_000, (3, 32, 32)), ("FFHQ-64", 70_000, (3, 64, 64))):
        dataset = StandIn(size, shape)
        real = RealData(dataset, ItemCodec.infer(dataset[0]))
        template = DataLoader(dataset, batch_size=128)
        timings: dict[str, list[float]] = {"check only": [], "check + digest": []}
        for _ in range(args.repeats):
            for label, run in (("check only", nan_check_only), ("check + digest", scan_real_data)):
                start = time.perf_counter()
                run(real, template)
                timings[label].append(time.perf_counter() - start)
        gigabytes = size * torch.Size(shape).numel() * 4 / 1e9
        check, both = (statistics.median(timings[k]) for k in ("check only", "check + digest"))
        print(
            f"{name}: {size} items, {gigabytes:.2f} GB of float32: NaN check {check:.1f} s, with the digest"
            f" {both:.1f} s (+{both - check:.1f} s, {(both - check) / gigabytes:.2f} s per GB)"
        )


if __name__ == "__main__":
    main()
