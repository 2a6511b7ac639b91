"""Running one grid point in the current process: the same code for a local worker and for a
submitit job (on this machine or on a SLURM node).

A point resumes from the newest checkpoint in its run directory when it has one (it was
interrupted, preempted or requeued, or failed and is retried); its output goes to
``<run_dir>/log.txt`` (appended to, over attempts) and its state to ``point.json``.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from sclc_lightning.grid.points import GridPoint
from sclc_lightning.grid.status import PointResult, write_point

__all__ = ["PointStopped", "run_point"]


class PointStopped(Exception):
    """Raised (by a worker's signal handler) to stop a point before its fit listens for signals."""


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0][:300]


def run_point(config: Sequence[str], point: GridPoint, run_dir: Path, job_id: str = "") -> PointResult:
    """Run (or resume) ``point`` with its output in ``<run_dir>/log.txt``.

    A :class:`SystemExit` (submitit's requeue, Lightning's exit on Ctrl-C) is recorded as
    ``interrupted`` and raised again: the process must end as the caller asked.
    """
    from sclc_lightning.lightning_cli import run_lightning_cli
    from sclc_lightning.loop.interruption import RunInterrupted

    run_dir.mkdir(parents=True, exist_ok=True)
    from sclc_lightning.store.checkpoints import latest_checkpoint  # torch only where a worker runs

    checkpoint = latest_checkpoint(run_dir)
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    write_point(
        run_dir,
        status="running",
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        resumed_from=str(checkpoint) if checkpoint else "",
        job_id=job_id,
        gpus=gpus,
        error="",
    )
    start = time.perf_counter()
    status, error, leave = "failed", "", None
    saved = os.dup(1), os.dup(2)
    with open(run_dir / "log.txt", "a") as log:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            what = f"resumes from {checkpoint}" if checkpoint else "starts"
            print(f"sclc grid: {point.name} {what}", flush=True)
            run_lightning_cli(point.fit_args(config, run_dir, checkpoint))
            status = "ok"
        except (RunInterrupted, PointStopped) as err:
            status, error = "interrupted", str(err)
        except KeyboardInterrupt as err:
            status, error = "interrupted", _one_line(err) if str(err) else "KeyboardInterrupt"
        except SystemExit as err:
            status, error, leave = "interrupted", f"the process was asked to exit ({err.code})", err
        except BaseException as err:  # a failed point is recorded; the grid goes on
            traceback.print_exc()
            status, error = "failed", _one_line(err)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    seconds = time.perf_counter() - start
    write_point(run_dir, status=status, seconds=round(seconds, 3), error=error)
    if leave is not None:
        raise leave
    return PointResult(point.name, status, seconds, error, gpus, job_id)
