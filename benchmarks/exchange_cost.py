"""The exchange between ranks of one round's samples, two ways, on 2 CPU ranks (gloo):

- ``files``: every rank writes its share as a safetensors file in the run folder (atomic rename,
  ``fsync``), the ranks meet at a barrier, global rank zero reads every share and removes the files
  (the loop's exchange before issue 32);
- ``collective``: ``torch.distributed.gather_object`` of each rank's tensors to global rank zero.

Usage: ``python benchmarks/exchange_cost.py`` (prints one row per size and way: the median of
5 exchanges, in milliseconds, on rank zero, from the start of the exchange to rank zero holding
every share).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

SIZES = {
    "points 2-D, 50,000 per rank": (50_000, (2,)),
    "MNIST 1x28x28, 5,000 per rank": (5_000, (1, 28, 28)),
    "images 3x64x64, 1,000 per rank": (1_000, (3, 64, 64)),
}
REPEATS = 5


def _share(rows: int, shape: tuple[int, ...], rank: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(rank)
    return {
        "data": torch.randn(rows, *shape, generator=generator),
        "source_index": torch.arange(rows, dtype=torch.int64) + rank * rows,
    }


def _by_files(share: dict[str, torch.Tensor], folder: Path, rank: int, world: int) -> list[dict[str, torch.Tensor]]:
    from safetensors.torch import load_file, save

    path = folder / f"rank_{rank}.safetensors"
    temporary = path.with_suffix(".tmp")
    with open(temporary, "wb") as file:
        file.write(save(share))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    dist.barrier()
    shares = []
    if rank == 0:
        shares = [load_file(str(folder / f"rank_{r}.safetensors")) for r in range(world)]
        for r in range(world):
            (folder / f"rank_{r}.safetensors").unlink()
    return shares


def _by_collective(share: dict[str, torch.Tensor], rank: int, world: int) -> list[dict[str, torch.Tensor]]:
    gathered: list[object] | None = [None] * world if rank == 0 else None
    dist.gather_object(share, gathered, dst=0)
    return [g for g in gathered or []]  # type: ignore[misc]


def _worker(rank: int, world: int, folder: str, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    for label, (rows, shape) in SIZES.items():
        share = _share(rows, shape, rank)
        megabytes = sum(t.numel() * t.element_size() for t in share.values()) * world / 1e6
        for way in ("files", "collective"):
            times = []
            for _ in range(REPEATS):
                dist.barrier()
                start = time.perf_counter()
                got = (
                    _by_files(share, Path(folder), rank, world)
                    if way == "files"
                    else _by_collective(share, rank, world)
                )
                times.append(time.perf_counter() - start)
                if rank == 0:
                    assert torch.equal(got[1]["data"], _share(rows, shape, 1)["data"])
            if rank == 0:
                print(
                    f"| {label} | {megabytes:.1f} MB | {way} | {1000 * statistics.median(times):.1f} ms |", flush=True
                )
    dist.destroy_process_group()


def main() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print("| size | exchanged | way | median of 5 |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_worker, args=(2, folder, port), nprocs=2, join=True)


if __name__ == "__main__":
    main()
