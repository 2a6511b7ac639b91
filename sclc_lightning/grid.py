"""``sclc grid``: the cartesian grid of a recipe (λ × γ × seeds, as the papers run it).

Every grid point is one ``sclc fit`` run in its own directory under ``--out``. Runs execute in
``--jobs`` worker processes (each imports Lightning once and runs its points one after the
other); a failing run is recorded and the others go on. ``runs.csv`` lists every run with its
values, status, wall time and final metrics. ``--dry-run`` prints one ``sclc fit`` command line
per point instead, to submit to a cluster scheduler.

On a machine with several GPUs, ``--jobs N`` gives each worker its own GPUs (its
``CUDA_VISIBLE_DEVICES``): the visible GPUs are split into N equal groups, or shared round-robin
when there are fewer GPUs than workers (``--gpus 0,1,2,3`` picks them, ``--gpus none`` leaves
the environment alone).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import re
import shlex
import sys
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

__all__ = ["GridPoint", "expand_grid", "gpu_slots", "main", "parse_seeds"]


@dataclass(frozen=True)
class GridPoint:
    """One run of a grid: its name, its overrides and its seed."""

    name: str
    values: tuple[tuple[str, str], ...]
    seed: int | None
    extra: tuple[str, ...] = field(default=())

    def fit_args(self, config: str, run_dir: Path) -> list[str]:
        """Arguments of ``sclc fit`` for this point."""
        args = ["fit", "--config", config, "--run_dir", str(run_dir)]
        for key, value in self.values:
            args += [f"--{key}", value]
        if self.seed is not None:
            args += ["--seed_everything", str(self.seed), "--loop.seed", str(self.seed)]
        return args + list(self.extra)


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"0,3,5"`` or ``"7"`` to a list of seeds.

    Examples:
        >>> parse_seeds("0-2,7")
        [0, 1, 2, 7]
    """
    seeds: list[int] = []
    for part in text.split(","):
        if re.fullmatch(r"\d+-\d+", part.strip()):
            low, high = (int(x) for x in part.split("-"))
            if high < low:
                raise ValueError(f"`--seeds` range {part!r} is empty.")
            seeds += range(low, high + 1)
        elif part.strip().isdigit():
            seeds.append(int(part))
        else:
            raise ValueError(f"`--seeds` must look like 0-9 or 0,3,5, got {text!r}.")
    return seeds


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def expand_grid(sets: Sequence[str], seeds: Sequence[int] | None, extra: Sequence[str] = ()) -> list[GridPoint]:
    """The cartesian product of ``KEY=V1,V2`` settings and seeds.

    Examples:
        >>> [p.name for p in expand_grid(["loop.synthetic_fraction=0.5,1"], [0])]
        ['synthetic_fraction=0.5_seed=0', 'synthetic_fraction=1_seed=0']
    """
    axes: list[list[tuple[str, str]]] = []
    for item in sets:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ValueError(f"`--set` must look like KEY=V1,V2, got {item!r}.")
        axes.append([(key.strip(), v.strip()) for v in values.split(",")])
    points = []
    for combo in itertools.product(*axes):
        for seed in seeds if seeds else [None]:
            parts = [f"{_short(k)}={v}" for k, v in combo] + ([f"seed={seed}"] if seed is not None else [])
            name = re.sub(r"[^A-Za-z0-9_.=+-]", "-", "_".join(parts) or "run")
            points.append(GridPoint(name, tuple(combo), seed, tuple(extra)))
    return points


def gpu_slots(gpus: Sequence[str], jobs: int) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` of each of ``jobs`` workers: equal groups of ``gpus``, or
    single GPUs shared round-robin when there are fewer GPUs than workers.

    Examples:
        >>> gpu_slots(["0", "1", "2", "3"], 2)
        ['0,1', '2,3']
        >>> gpu_slots(["0", "1"], 3)
        ['0', '1', '0']
    """
    if not gpus:
        return []
    if len(gpus) >= jobs:
        per = len(gpus) // jobs
        return [",".join(gpus[i * per : (i + 1) * per]) for i in range(jobs)]
    return [gpus[i % len(gpus)] for i in range(jobs)]


def _visible_gpus(spec: str, jobs: int) -> list[str]:
    if spec == "none" or (spec == "auto" and jobs == 1):
        return []
    if spec != "auto":
        if not re.fullmatch(r"\d+(,\d+)*", spec):
            raise ValueError(f"`--gpus` must be auto, none or a list like 0,1,3; got {spec!r}.")
        return spec.split(",")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _take_gpu_slot(slots: Any) -> None:
    """Worker initializer: this worker's GPUs, before anything in it touches CUDA."""
    os.environ["CUDA_VISIBLE_DEVICES"] = slots.get()


def _run_point(config: str, point: GridPoint, run_dir: str) -> tuple[str, str, float, str, str]:
    """Run one grid point in this worker process, its output in ``<run_dir>/log.txt``."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    saved = os.dup(1), os.dup(2)
    with open(Path(run_dir) / "log.txt", "w") as log:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            from sclc_lightning.lightning_cli import run_lightning_cli

            run_lightning_cli(point.fit_args(config, Path(run_dir)))
            status, error = "ok", ""
        except BaseException as err:  # a failed run is reported, the grid goes on
            traceback.print_exc()
            status, error = "failed", f"{type(err).__name__}: {err}".splitlines()[0][:300]
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
    return point.name, status, time.perf_counter() - start, error, os.environ.get("CUDA_VISIBLE_DEVICES", "")


def _final_metrics(run_dir: Path) -> dict[str, str]:
    path = run_dir / "metrics.csv"
    if not path.exists():
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {f"final_{k}": v for k, v in rows[-1].items()} if rows else {}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sclc grid``; returns 1 when a run failed."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args_list:
        cut = args_list.index("--")
        args_list, extra = args_list[:cut], args_list[cut + 1 :]
    parser = argparse.ArgumentParser(prog="sclc grid", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the recipe YAML")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2", help="a grid axis (repeatable)")
    parser.add_argument("--seeds", default=None, help="seeds, e.g. 0-9 or 0,3,5 (sets seed_everything and loop.seed)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel worker processes")
    parser.add_argument(
        "--gpus",
        default="auto",
        help="GPUs to share out over the workers: auto (the visible ones, when --jobs > 1), none, or e.g. 0,1,3",
    )
    parser.add_argument("--out", default=None, help="grid folder (default runs/<recipe>-grid/<timestamp>)")
    parser.add_argument("--dry-run", action="store_true", help="print one `sclc fit` command per point and stop")
    args = parser.parse_args(args_list)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    points = expand_grid(args.set, parse_seeds(args.seeds) if args.seeds else None, extra)
    out = Path(args.out or os.path.join("runs", f"{Path(args.config).stem}-grid", time.strftime("%Y%m%d-%H%M%S")))
    if args.dry_run:
        for point in points:
            print(shlex.join(["sclc", *point.fit_args(args.config, out / point.name)]))
        return 0
    try:
        slots = gpu_slots(_visible_gpus(args.gpus, args.jobs), args.jobs)
    except ValueError as err:
        parser.error(str(err))
    out.mkdir(parents=True, exist_ok=True)
    print(f"sclc grid: {len(points)} runs of {args.config} in {out} with {args.jobs} worker(s)")
    context = get_context("spawn")
    pool_args: dict[str, Any] = {}
    if slots:
        print(f"sclc grid: worker GPUs (CUDA_VISIBLE_DEVICES) {' | '.join(slots)}")
        queue = context.Queue()
        for slot in slots:
            queue.put(slot)
        pool_args = {"initializer": _take_gpu_slot, "initargs": (queue,)}
    results: dict[str, tuple[str, float, str, str]] = {}
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context, **pool_args) as pool:
        futures = {pool.submit(_run_point, args.config, p, str(out / p.name)): p for p in points}
        for future in as_completed(futures):
            point = futures[future]
            try:
                name, status, seconds, error, gpus = future.result()
            except Exception as err:  # the worker process itself died
                name, status, seconds, error, gpus = point.name, "failed", 0.0, f"worker died: {err}", ""
            results[name] = (status, seconds, error, gpus)
            print(f"  [{len(results)}/{len(points)}] {name}: {status} ({seconds:.1f} s){' ' + error if error else ''}")
    rows = []
    for point in points:
        status, seconds, error, gpus = results[point.name]
        row = {"name": point.name, "status": status, "seconds": f"{seconds:.2f}", "run_dir": str(out / point.name)}
        if slots:
            row["gpus"] = gpus
        row.update({k: v for k, v in point.values})
        row["seed"] = "" if point.seed is None else str(point.seed)
        row.update(_final_metrics(out / point.name))
        row["error"] = error
        rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(out / "runs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    failed = [r["name"] for r in rows if r["status"] != "ok"]
    print(f"sclc grid: {len(rows) - len(failed)} ok, {len(failed)} failed; table in {out / 'runs.csv'}")
    return 1 if failed else 0
