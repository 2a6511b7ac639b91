"""What each rank does while the loop makes a generation, 2 CPU ranks (gloo) against 1: the time
split per rank (sample / exchange write / gather / correct / write / commit / wait at the
meeting points) and each rank's peak memory.

The model draws Gaussian images (3 x 64 x 64) at no cost and trains one trivial parameter, so the
figures are the loop's own work on a generation of ``n`` images (lambda = 1, augment), with a
point-by-point corrector (KMeans projection onto centres fitted once on the real images: each
rank corrects and writes its own share), the same projection declared as needing the whole
generation (``kmeans_gathered``: global rank zero gathers, corrects and writes it all, as every
corrector did before issue 34), or none. Each rank writes ``rank_<R>.json``; the table is printed at the end.

Usage::

    python benchmarks/rank_split.py [--ranks 1 2] [--images 8000] [--corrector kmeans|kmeans_gathered|none]

Each configuration runs under ``torchrun --standalone --nproc-per-node R``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

SHAPE = (3, 64, 64)
PHASES = ("sample", "exchange_write", "gather", "correct", "write", "commit", "wait")


#: What is timed: (module, attribute, phase); tests/test_benchmarks.py checks that each exists.
#: Gathering path (a corrector that needs the whole generation): the exchange of samples, rank
#: zero's correction and its write of every shard. Own shares (point by point, or none): each
#: rank's notes, correction and shards, and rank zero's commit.
TIMED = (
    ("sclc_lightning.loop.production", "sample_share", "sample"),
    ("sclc_lightning.loop.exchange", "Exchange.write", "exchange_write"),
    ("sclc_lightning.loop.exchange", "Exchange.write_note", "exchange_write"),
    ("sclc_lightning.loop.exchange", "Exchange.read", "gather"),
    ("sclc_lightning.loop.exchange", "Exchange.read_notes", "gather"),
    ("sclc_lightning.loop.correction", "Rounds.take", "correct"),
    ("sclc_lightning.loop.shares", "OwnShares.correct_share", "correct"),
    ("sclc_lightning.store.synthetic", "encode_batch", "write"),
    ("sclc_lightning.loop.shares", "encode_batch", "write"),
    ("sclc_lightning.store.synthetic", "SyntheticStore.write_shards", "write"),
    ("sclc_lightning.store.synthetic", "SyntheticStore.commit_generation", "commit"),
    ("sclc_lightning.loop.production", "agree", "wait"),
    ("sclc_lightning.loop.exchange", "agree", "wait"),
    ("sclc_lightning.loop.shares", "agree", "wait"),
)


def resolve(module: str, attribute: str) -> tuple[Any, str]:
    """The object that holds ``attribute`` (``Class.method`` or a module's name) and its last name."""
    import importlib

    owner: Any = importlib.import_module(module)
    *path, name = attribute.split(".")
    for part in path:
        owner = getattr(owner, part)
    getattr(owner, name)  # raises AttributeError when it moved
    return owner, name


def _instrument(times: dict[str, float]) -> None:
    """Wrap the loop's steps so that each rank adds up the seconds it spends in each."""

    def timed(owner: Any, name: str, phase: str) -> None:
        static = isinstance(inspect.getattr_static(owner, name), staticmethod)
        original: Callable[..., Any] = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                times[phase] += time.perf_counter() - start

        setattr(owner, name, staticmethod(wrapper) if static else wrapper)

    for module, attribute, phase in TIMED:
        timed(*resolve(module, attribute), phase)


def _corrector(name: str) -> Any:
    """``kmeans``: each rank corrects its own share; ``kmeans_gathered``: the same projection
    declared as needing the whole generation (global rank zero gathers and corrects it all)."""
    from sclc_lightning.correctors.kmeans import KMeansCorrector

    class Gathered(KMeansCorrector):
        pointwise = False

    return {"none": None, "kmeans": KMeansCorrector(num_clusters=8), "kmeans_gathered": Gathered(num_clusters=8)}[name]


def worker(out: Path, n: int, corrector: str, generations: int) -> None:
    """One rank of the fit (started by torchrun)."""
    import resource
    import warnings

    import lightning.pytorch as pl
    import torch

    from sclc_lightning import SelfConsumingLoop

    warnings.filterwarnings("ignore")
    times: dict[str, float] = defaultdict(float)
    _instrument(times)

    class Noise(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return (self.weight - batch.mean()) ** 2

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def sample(self, num_samples: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
            return torch.randn(num_samples, *SHAPE, generator=generator)

    real = torch.randn(n, *SHAPE, generator=torch.Generator().manual_seed(0))
    loop = SelfConsumingLoop(
        1.0,
        generations,
        images_per_generation=256,
        corrector=_corrector(corrector),
        output_dir=out / "run",
        sample_batch_size=1000,
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=int(os.environ.get("WORLD_SIZE", "1")),
        strategy="ddp" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "auto",
        callbacks=[loop],
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    started = time.perf_counter()
    trainer.fit(Noise(), torch.utils.data.DataLoader(real, batch_size=64))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record = {"rank": trainer.global_rank, "seconds": dict(times), "peak_mb": peak_mb}
    record["total_s"] = time.perf_counter() - started
    (out / f"rank_{trainer.global_rank}.json").write_text(json.dumps(record))


def _launch(ranks: int, n: int, corrector: str, generations: int) -> list[dict[str, Any]]:
    out = Path(tempfile.mkdtemp(prefix=f"rank_split_{ranks}_"))
    command = [
        *(str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc-per-node", str(ranks)),
        *(__file__, "worker", str(out), "--images", str(n), "--corrector", corrector),
        *("--generations", str(generations)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return [json.loads((out / f"rank_{r}.json").read_text()) for r in range(ranks)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="table", choices=("table", "worker"))
    parser.add_argument("out", nargs="?", default=None)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--images", type=int, default=8000)
    parser.add_argument("--corrector", default="kmeans", choices=("kmeans", "kmeans_gathered", "none"))
    parser.add_argument("--generations", type=int, default=2)
    args = parser.parse_args(argv)
    if args.mode == "worker":
        worker(Path(args.out), args.images, args.corrector, args.generations)
        return
    gigabytes = args.images * 4 * SHAPE[0] * SHAPE[1] * SHAPE[2] / 1e9
    print(f"n = {args.images} images {SHAPE} ({gigabytes:.2f} GB a generation), {args.generations} generations,")
    print(f"corrector {args.corrector}; seconds per rank over the run, peak resident memory per rank")
    print("| ranks | rank | " + " | ".join(PHASES) + " | total s | peak MB |")
    print("|" + "---|" * (len(PHASES) + 4))
    for ranks in args.ranks:
        for row in _launch(ranks, args.images, args.corrector, args.generations):
            cells = " | ".join(f"{row['seconds'].get(p, 0.0):.2f}" for p in PHASES)
            print(f"| {ranks} | {row['rank']} | {cells} | {row['total_s']:.1f} | {row['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
