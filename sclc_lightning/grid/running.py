"""Running a grid's points: plan what is left, hold the folder's lock, launch the points (local
workers or submitit jobs), show their progress and write the runs table. Shared by ``sclc grid``
and :func:`~sclc_lightning.grid.api.run_grid`."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sclc_lightning.grid.points import GridPoint
from sclc_lightning.grid.status import PointResult, read_point, write_table

__all__ = ["LAUNCHERS", "PointProgress", "cluster_options", "run_locked"]

LAUNCHERS = ("local", "submitit-local", "slurm")


def cluster_options(configs: Sequence[str], given: Mapping[str, Any], launcher: str = "slurm") -> Any:
    """The submitit launchers' options: each recipe's ``slurm:`` section (later files over
    earlier ones, as in ``sclc fit``), then ``given`` (the ``--slurm.*`` options)."""
    try:
        from sclc_lightning.grid.cluster import ClusterOptions
    except ImportError as err:
        raise ValueError(
            f"--launcher {launcher} needs submitit ({err}): pip install 'sclc-lightning[cluster]'"
        ) from None

    values: dict[str, Any] = {}
    for config in configs:
        recipe = yaml.safe_load(Path(config).read_text()) or {}
        values.update(dict(recipe.get("slurm") or {}) if isinstance(recipe, dict) else {})
    values.update({name: value for name, value in given.items() if value})
    return ClusterOptions.from_mapping(values)


def _plan(
    points: Sequence[GridPoint], out: Path, rerun_failed: bool, launcher: str
) -> tuple[list[GridPoint], dict[str, str]]:
    """The points to run now, and why the others are left out."""
    to_run, skipped = [], {}
    for point in points:
        saved = read_point(out / point.name)
        status = saved.get("status")
        if status == "ok":
            skipped[point.name] = "finished"
        elif status == "failed" and not rerun_failed:
            skipped[point.name] = "failed (--rerun-failed retries it)"
        elif status == "running" and launcher == "slurm" and _active(out, str(saved.get("job_id", ""))):
            skipped[point.name] = f"still running as job {saved.get('job_id')}"
        else:
            to_run.append(point)
    return to_run, skipped


def _active(out: Path, job_id: str) -> bool:
    from sclc_lightning.grid.cluster import still_running

    return still_running(out / ".submitit" / "%j", job_id)


def run_locked(args: argparse.Namespace, points: list[GridPoint], out: Path, options: Any, slots: list[str]) -> int:
    """:func:`_run` holding the grid folder's lock (2 when another process holds it)."""
    from sclc_lightning.store.lock import RunDirectoryLocked, RunLock

    try:
        lock = RunLock(out, owner="grid").acquire(None)
    except RunDirectoryLocked as err:
        print(f"sclc grid: error: {err}", file=sys.stderr)
        return 2
    try:
        return _run(args, points, out, options, slots)
    finally:
        lock.release()


class PointProgress:
    """The grid's console: one line per point as it ends (status, its time, the grid's elapsed
    time and an estimate of the time left), under a progress bar over the points when the
    console is a terminal. Each point's own output is in its ``log.txt``."""

    def __init__(self, total: int, stream: Any = None) -> None:
        from tqdm.auto import tqdm

        self.total, self.done, self.start = total, 0, time.monotonic()
        self.stream = stream or sys.stdout
        terminal = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = tqdm(
            total=total,
            desc="sclc grid",
            unit="point",
            file=self.stream,
            disable=not terminal or not total,
            leave=False,
        )

    def point_done(self, result: PointResult) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        left = elapsed / self.done * (self.total - self.done)
        clock = f"{_clock(elapsed)} elapsed" + (f", ~{_clock(left)} left" if self.done < self.total else "")
        error = f" {result.error}" if result.error else ""
        line = f"  [{self.done}/{self.total}] {result.name}: {result.status} ({result.seconds:.1f} s; {clock}){error}"
        self.bar.write(line, file=self.stream)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _clock(seconds: float) -> str:
    """``h:mm:ss``.

    Examples:
        >>> _clock(3725.4)
        '1:02:05'
    """
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _run(args: argparse.Namespace, points: list[GridPoint], out: Path, options: Any, slots: list[str]) -> int:
    to_run, skipped = _plan(points, out, args.rerun_failed, args.launcher)
    recipe = " + ".join(args.config)
    print(f"sclc grid: {len(points)} points of {recipe} in {out} ({args.launcher} launcher, --jobs {args.jobs})")
    for name, why in skipped.items():
        print(f"  {name}: skipped, {why}")
    if slots:
        print(f"sclc grid: worker GPUs (CUDA_VISIBLE_DEVICES) {' | '.join(slots)}")
    results: dict[str, PointResult] = {}
    progress = PointProgress(len(to_run))

    def report(result: PointResult) -> None:
        results[result.name] = result
        progress.point_done(result)
        write_table(out, points, results)

    write_table(out, points, results)
    stopped_by: int | None = None
    if to_run:
        if args.launcher == "local":
            from sclc_lightning.grid.local import run_local

            results_found, stopped_by = run_local(args.config, to_run, out, args.jobs, slots, args.stop_timeout, report)
        else:
            from sclc_lightning.grid.cluster import run_submitit

            results_found, stopped_by = run_submitit(
                args.launcher, args.config, to_run, out, options, args.jobs, args.detach, args.stop_timeout, report
            )
            if args.detach:
                print(f"sclc grid: jobs submitted; rerun this command with --out {out} to collect them.")
                return 0
        results.update(results_found)
    progress.close()
    table = write_table(out, points, results)
    statuses = {
        p.name: results[p.name].status if p.name in results else read_point(out / p.name).get("status", "pending")
        for p in points
    }
    counts = {
        s: sum(1 for v in statuses.values() if v == s) for s in ("ok", "failed", "interrupted", "pending", "running")
    }
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n or s in ("ok", "failed"))
    print(f"sclc grid: {summary} of {len(points)} points; table in {table}")
    if stopped_by is not None:
        name = signal.Signals(stopped_by).name
        print(f"sclc grid: stopped by {name}; rerun the same command to resume the interrupted points.")
        return 128 + stopped_by
    if counts["failed"]:
        print(f"sclc grid: {counts['failed']} point(s) failed; see their log.txt (rerun with --rerun-failed).")
    return 0 if counts["ok"] == len(points) else 1
