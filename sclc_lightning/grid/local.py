"""``--launcher local``: grid points in worker processes on this machine.

Each of ``--jobs`` workers imports Lightning once and runs points one after the other; a worker
gets its next point only when it reports the last one, so that a stop never starts new work.
Workers die with the grid process (``PR_SET_PDEATHSIG``), even after ``kill -9``, and share
the CPU cores (``OMP_NUM_THREADS`` and torch's threads: cores / workers, unless
``OMP_NUM_THREADS`` is set).

On ``SIGINT`` or ``SIGTERM`` the grid sends ``SIGTERM`` to every worker: a fit saves a checkpoint
at its next safe point and ends (:mod:`sclc_lightning.loop.interruption`); a worker still
running ``--stop-timeout`` seconds later is killed. Their points are ``interrupted`` and resume
from their last checkpoint when the same grid runs again.
"""

from __future__ import annotations

import gc
import os
import queue
import signal
import time
from collections.abc import Callable, Sequence
from multiprocessing import get_context
from pathlib import Path
from types import FrameType
from typing import Any

from sclc_lightning._process import stop_resource_tracker
from sclc_lightning.grid.points import GridPoint
from sclc_lightning.grid.status import PointResult

__all__ = ["run_local"]


def _worker(
    tasks: Any, results: Any, config: Sequence[str], out: str, gpus: str | None, parent: int, threads: int
) -> None:
    """A worker process: run the points it is given until told to stop."""
    from sclc_lightning._process import die_with_parent

    die_with_parent(parent)
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    if "OMP_NUM_THREADS" not in os.environ:  # workers share the cores instead of oversubscribing them
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the grid process decides, and sends SIGTERM
    from sclc_lightning.grid.execution import PointStopped, run_point
    from sclc_lightning.loop.interruption import stop_requested

    state = {"stopping": False, "busy": False}

    def on_term(signum: int, frame: FrameType | None) -> None:
        first = not state["stopping"]
        state["stopping"] = True
        # A fit not listening (being set up or finishing) is stopped now; one that took the stop
        # (the signal came to the process group, then again from the grid) ends on its own.
        if first and state["busy"] and not stop_requested():
            raise PointStopped("SIGTERM while the fit was not listening for it (being set up or finishing)")

    signal.signal(signal.SIGTERM, on_term)
    while not state["stopping"]:
        try:
            point = tasks.get(timeout=0.5)
        except queue.Empty:
            continue
        if point is None:
            break
        results.put(("started", point.name, os.getpid()))
        state["busy"] = True
        try:
            result = run_point(config, point, Path(out) / point.name)
        except PointStopped as err:  # between run_point's own handling and the fit
            result = PointResult(point.name, "interrupted", 0.0, str(err), gpus or "")
        finally:
            state["busy"] = False
        results.put(("done", result, os.getpid()))
        if result.status == "interrupted":
            break
    # the resource tracker a fit's multiprocessing started in this worker ends with it, not after
    # (orphaned, it would outlive the grid in its process group)
    stop_resource_tracker()


def run_local(
    config: Sequence[str],
    points: Sequence[GridPoint],
    out: Path,
    jobs: int,
    slots: Sequence[str],
    stop_timeout: float,
    report: Callable[[PointResult], None],
) -> tuple[dict[str, PointResult], int | None]:
    """Run ``points`` in ``jobs`` workers; ``report`` is called as each one ends.

    Returns:
        The results by point name, and the signal that stopped the grid (or ``None``).
    """
    stop: dict[str, int | None] = {"signal": None}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop["signal"] = signum

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    pool = _Pool(config, out, min(jobs, len(points)), slots, report)
    try:
        pool.start()
        pool.run(list(points), lambda: stop["signal"] is not None)
        if stop["signal"] is not None:
            pool.stop(stop_timeout)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        pool.close(stop_timeout)
    done = pool.done
    # every process the grid started has ended before it returns: the workers (joined above) and
    # the resource tracker that `spawn` started, once the queues it tracks are gone
    del pool
    gc.collect()
    stop_resource_tracker()
    return done, stop["signal"]


class _Pool:
    """The grid process's side of the workers: hand out points, collect their reports, notice
    workers that died, and stop them all."""

    def __init__(
        self, config: Sequence[str], out: Path, size: int, slots: Sequence[str], report: Callable[[PointResult], None]
    ) -> None:
        context = get_context("spawn")
        self.tasks, self.results = context.Queue(), context.Queue()
        threads = max(1, (os.cpu_count() or 1) // max(1, size))
        self.workers = [
            context.Process(
                target=_worker,
                args=(self.tasks, self.results, config, str(out), slots[i] if slots else None, os.getpid(), threads),
                name=f"sclc-grid-worker-{i}",
            )
            for i in range(size)
        ]
        self.report = report
        self.running: dict[int, str] = {}  # worker pid -> point name
        self.done: dict[str, PointResult] = {}
        self.queued = 0  # points put in the task queue that no worker has taken yet

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def alive(self) -> int:
        return sum(w.is_alive() for w in self.workers)

    def run(self, todo: list[GridPoint], stopped: Callable[[], bool]) -> None:
        """Give each idle worker its next point until every point reported, no worker is left
        (the points not run stay pending) or ``stopped()``."""
        total, finished_sent = len(todo) + len(self.done), False
        while len(self.done) < total and not stopped():
            while todo and len(self.running) + self.queued < self.alive():
                self.tasks.put(todo.pop(0))
                self.queued += 1
            if not todo and not finished_sent:
                for _ in self.workers:
                    self.tasks.put(None)
                finished_sent = True
            self.collect(timeout=0.5)
            self.reap("failed")
            if not self.alive() and self.results.empty():
                break

    def collect(self, timeout: float) -> bool:
        """Take one message from the workers; whether there was one."""
        try:
            kind, payload, pid = self.results.get(timeout=timeout)
        except queue.Empty:
            return False
        if kind == "started":
            self.running[pid] = payload
            self.queued -= 1
            return True
        self.running.pop(pid, None)
        self.done[payload.name] = payload
        self.report(payload)
        return True

    def reap(self, status: str) -> None:
        """Points whose worker process died without reporting (killed, out of memory)."""
        for worker in self.workers:
            if worker.exitcode is not None and worker.pid in self.running:
                name = self.running.pop(worker.pid)
                result = PointResult(name, status, 0.0, f"worker process ended with exit code {worker.exitcode}")
                self.done[name] = result
                self.report(result)

    def stop(self, timeout: float) -> None:
        """SIGTERM to every worker, their reports for ``timeout`` seconds, then SIGKILL."""
        for worker in self.workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            self.collect(timeout=0.2)
        while self.collect(timeout=0.05):
            pass
        for worker in self.workers:
            if worker.is_alive():
                worker.kill()
                worker.join(timeout=5)
        self.reap("interrupted")

    def close(self, timeout: float) -> None:
        """Wait for the workers to end (they were told to, or stopped), killing any still alive
        after ``timeout`` seconds; each is joined, so none outlives the grid."""
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            if worker.is_alive():
                worker.kill()
            worker.join()
        self.tasks.cancel_join_thread()
        self.results.cancel_join_thread()
        self.tasks.close()
        self.results.close()
