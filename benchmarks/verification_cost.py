"""What verified run directories cost: writing a generation with its digests, and checking it on
read-back (SHA-256 of every file, row counts, shapes, dtypes, finite values, source indices).

A CIFAR-10-sized generation by default: n = 50,000 images of 3×32×32 float32 with their labels
(614 MB), in 65,536-row shards as the loop writes them. Compare with a generation's training:
Bertrand et al. train on 5·10⁶ images per CIFAR-10 generation (19,532 steps of batch 256).

Usage: ``python benchmarks/verification_cost.py [--items 50000] [--shape 3 32 32] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from sclc_lightning.items import ItemCodec, RealData, SyntheticBatch
from sclc_lightning.store import SyntheticStore
from sclc_lightning.store.verification import file_sha256


class _Labelled:
    """``n`` real items ``(zeros(shape), label)``: only their structure and labels matter here."""

    def __init__(self, n: int, shape: tuple[int, ...]) -> None:
        self.n, self.shape = n, shape

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.zeros(self.shape), index % 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--shape", type=int, nargs="+", default=[3, 32, 32])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    shape = tuple(args.shape)
    real = RealData(_Labelled(args.items, shape), ItemCodec.infer((torch.zeros(shape), 0)))
    batch = SyntheticBatch(torch.randn(args.items, *shape), torch.arange(args.items))
    size = batch.data.numel() * 4 / 1e6
    writes, verifies, digests = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            store = SyntheticStore(Path(folder) / str(repeat))
            store.create("bench", {}, real.codec)
            start = time.perf_counter()
            record = store.write_generation(
                1,
                batch,
                real,
                shard_rows=65_536,
                sampled_at_step=0,
                settings={},
                seconds_sampling=0.0,
                seconds_correcting=0.0,
            )
            writes.append(time.perf_counter() - start)
            start = time.perf_counter()
            for shard in record.shards:
                file_sha256(store.root / "gen_0001" / shard.name)
            digests.append(time.perf_counter() - start)
            start = time.perf_counter()
            SyntheticStore(store.root).verify(record, real.codec, len(real))
            verifies.append(time.perf_counter() - start)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"generation: {args.items} items of {shape} float32 + labels, {size:.0f} MB of data")
    print(f"write with digests   median {statistics.median(writes):.2f} s  runs {[round(t, 2) for t in writes]}")
    digest_s = statistics.median(digests)
    print(f"SHA-256 of the files median {digest_s:.2f} s  ({size / digest_s:.0f} MB/s)")
    print(f"full read-back check median {statistics.median(verifies):.2f} s  runs {[round(t, 2) for t in verifies]}")


if __name__ == "__main__":
    main()
