"""``--launcher submitit-local`` and ``--launcher slurm``: grid points as submitit jobs.

Each point is a :class:`FitPoint` job: the same :func:`~sclc_lightning.grid.execution.run_point`
as a local worker, pickled by submitit. With ``slurm`` the points go out as one job array (at
most ``--jobs`` running at once) with the resources of ``--slurm.*`` (or the recipe's ``slurm:``
section); ``submitit-local`` runs the same jobs on this machine through submitit's local
executor, ``--jobs`` at a time.

Preemption and time limits: submitit asks SLURM to send ``SIGUSR2`` ``signal_delay_s`` seconds
before the job's end. The loop then saves a checkpoint at its next safe point and calls
submitit's handler, which requeues the job; the requeued job runs :class:`FitPoint` again, which
resumes from that checkpoint. A job with several tasks (``nodes`` × ``tasks_per_node``) is one
DDP run: Lightning reads the ranks from SLURM's environment, and the grid passes
``--trainer.num_nodes`` and ``--trainer.devices`` to match.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import FrameType
from typing import Any

import submitit

from sclc_lightning.grid.execution import run_point
from sclc_lightning.grid.points import GridPoint
from sclc_lightning.grid.status import PointResult

__all__ = ["ClusterOptions", "FitPoint", "run_submitit", "still_running"]

#: SLURM job states in which a job may still run (``squeue``/``sacct`` names).
ACTIVE_STATES = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING")


class FitPoint(submitit.helpers.Checkpointable):
    """One grid point as a submitit job. When the job is preempted or reaches its time limit,
    submitit resubmits this same call (``Checkpointable``), which resumes from the checkpoint the
    loop saved."""

    def __init__(self, config: Sequence[str], point: GridPoint, run_dir: str) -> None:
        self.config, self.point, self.run_dir = config, point, run_dir

    def __call__(self) -> PointResult:
        try:
            job_id = str(submitit.JobEnvironment().job_id)
        except RuntimeError:  # run outside a submitit job (tests, debugging)
            job_id = ""
        return run_point(self.config, self.point, Path(self.run_dir), job_id)


@dataclass
class ClusterOptions:
    """Resources of each grid point's job (``--slurm.NAME`` or the recipe's ``slurm:`` section).

    Attributes:
        partition: SLURM partition.
        time: time limit of one job, in minutes (a preempted or timed-out job is requeued and
            resumes; each attempt gets this long).
        nodes: nodes per point; more than one makes the point a multi-node DDP run.
        tasks_per_node: tasks (DDP ranks) per node, usually the GPUs per node.
        gpus_per_node: GPUs per node.
        cpus_per_task: CPU cores per task.
        mem_gb: memory per node, in GB.
        account: SLURM account.
        qos: SLURM quality of service.
        constraint: SLURM node constraint.
        signal_delay_s: seconds before the time limit at which the job is asked to checkpoint.
        max_requeues: how many time limits a point may hit before it is given up.
        setup: shell lines run before the job (``module load ...``, activating an environment).
        additional: other ``#SBATCH`` options, e.g. ``{"mail-type": "END"}``.
    """

    partition: str | None = None
    time: int = 24 * 60
    nodes: int = 1
    tasks_per_node: int = 1
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    signal_delay_s: int = 120
    max_requeues: int = 3
    setup: list[str] = field(default_factory=list)
    additional: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ClusterOptions:
        """Options from a mapping (the recipe's ``slurm:`` section merged with ``--slurm.*``).

        Raises:
            ValueError: an unknown name or a value out of range.
        """
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ValueError(f"Unknown SLURM option(s) {unknown}; known: {', '.join(cls.names())}.")
        options = cls(**{k: v for k, v in values.items() if v is not None})
        for name in ("time", "nodes", "tasks_per_node", "max_requeues"):
            if int(getattr(options, name)) < (0 if name == "max_requeues" else 1):
                raise ValueError(f"`slurm.{name}` must be >= 1, got {getattr(options, name)}.")
        return options

    def fit_arguments(self) -> list[str]:
        """Trainer arguments that make the job's tasks one DDP run."""
        if self.nodes == 1 and self.tasks_per_node == 1:
            return []
        return ["--trainer.num_nodes", str(self.nodes), "--trainer.devices", str(self.tasks_per_node)]


def make_executor(launcher: str, folder: Path, options: ClusterOptions, name: str, jobs: int) -> submitit.Executor:
    """The submitit executor of ``launcher`` (``submitit-local`` or ``slurm``)."""
    if launcher == "submitit-local":
        local = submitit.LocalExecutor(folder=folder, max_num_timeout=options.max_requeues)
        local.update_parameters(
            timeout_min=options.time,
            signal_delay_s=options.signal_delay_s,
            tasks_per_node=1,
            gpus_per_node=options.gpus_per_node or 0,
            stderr_to_stdout=True,
        )
        return local
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=options.max_requeues)
    parameters: dict[str, Any] = {
        "name": name,
        "timeout_min": options.time,
        "nodes": options.nodes,
        "tasks_per_node": options.tasks_per_node,
        "gpus_per_node": options.gpus_per_node,
        "cpus_per_task": options.cpus_per_task,
        "mem_gb": options.mem_gb,
        "slurm_partition": options.partition,
        "slurm_account": options.account,
        "slurm_qos": options.qos,
        "slurm_constraint": options.constraint,
        "slurm_signal_delay_s": options.signal_delay_s,
        "slurm_array_parallelism": jobs,
        "slurm_setup": options.setup or None,
        "slurm_additional_parameters": options.additional or None,
    }
    executor.update_parameters(**{k: v for k, v in parameters.items() if v is not None})
    return executor


def still_running(folder: Path, job_id: str) -> bool:
    """Whether the SLURM job ``job_id`` may still run (then a rerun must not start its point)."""
    if not job_id:
        return False
    try:
        state = submitit.SlurmJob(folder=folder, job_id=job_id).state
    except Exception:  # no sacct here, or the job is unknown
        return False
    return str(state).split()[0].upper() in ACTIVE_STATES


def _result(job: Any, point: GridPoint) -> PointResult:
    try:
        result = job.result()
    except Exception as err:  # the job itself failed (killed, out of time too often, lost node)
        text = str(err).strip().splitlines()
        return PointResult(point.name, "failed", 0.0, f"job {job.job_id}: {text[-1] if text else type(err).__name__}")
    if isinstance(result, PointResult):
        return PointResult(result.name, result.status, result.seconds, result.error, result.gpus, str(job.job_id))
    return PointResult(point.name, "failed", 0.0, f"job {job.job_id} returned {result!r}")


def run_submitit(
    launcher: str,
    config: Sequence[str],
    points: Sequence[GridPoint],
    out: Path,
    options: ClusterOptions,
    jobs: int,
    detach: bool,
    stop_timeout: float,
    report: Callable[[PointResult], None],
    poll_s: float = 1.0,
) -> tuple[dict[str, PointResult], int | None]:
    """Submit ``points`` as submitit jobs and wait for them (unless ``detach``).

    Returns:
        The results by point name (none when detached), and the signal that stopped the grid.
    """
    folder = out / ".submitit" / "%j"
    name = f"sclc-{Path(config[0]).stem}"
    executor = make_executor(launcher, folder, options, name, jobs)
    extra = options.fit_arguments() if launcher == "slurm" else []

    def job_of(point: GridPoint) -> FitPoint:
        grid_point = replace(point, extra=(*point.extra, *extra))  # the method's layer kept
        resolved = [str(Path(c).resolve()) for c in config]
        return FitPoint(resolved, grid_point, str((out / point.name).resolve()))

    stop: dict[str, int | None] = {"signal": None}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop["signal"] = signum

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    done: dict[str, PointResult] = {}
    running: dict[str, tuple[Any, GridPoint]] = {}
    todo = list(points)
    try:
        if launcher == "slurm":
            _submit_array(executor, todo, job_of, running)
            todo = []
            if detach:
                return {}, None
        while (todo or running) and stop["signal"] is None:
            _submit_more(executor, todo, job_of, running, jobs)
            _collect_finished(running, done, report)
            time.sleep(poll_s)
        if stop["signal"] is not None:
            _stop_jobs(launcher, running, done, report, stop_timeout)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return done, stop["signal"]


def _submit_array(
    executor: submitit.Executor,
    points: Sequence[GridPoint],
    job_of: Callable[[GridPoint], FitPoint],
    running: dict[str, tuple[Any, GridPoint]],
) -> None:
    """Submit ``points`` as one SLURM job array, adding each job to ``running``."""
    with executor.batch():
        submitted = [(executor.submit(job_of(p)), p) for p in points]
    for job, point in submitted:
        running[point.name] = (job, point)
    print(f"sclc grid: submitted {len(submitted)} jobs ({submitted[0][0].job_id.split('_')[0]}, an array)")


def _submit_more(
    executor: submitit.Executor,
    todo: list[GridPoint],
    job_of: Callable[[GridPoint], FitPoint],
    running: dict[str, tuple[Any, GridPoint]],
    jobs: int,
) -> None:
    """Submit the next points of ``todo`` (taken from it) until ``jobs`` are running."""
    while todo and len(running) < jobs:
        point = todo.pop(0)
        running[point.name] = (executor.submit(job_of(point)), point)


def _collect_finished(
    running: dict[str, tuple[Any, GridPoint]],
    done: dict[str, PointResult],
    report: Callable[[PointResult], None],
) -> None:
    """Move the jobs that have ended from ``running`` to ``done``, reporting each result."""
    for key, (job, point) in list(running.items()):
        if job.done():
            del running[key]
            done[key] = _result(job, point)
            report(done[key])


def _stop_jobs(
    launcher: str,
    running: dict[str, tuple[Any, GridPoint]],
    done: dict[str, PointResult],
    report: Callable[[PointResult], None],
    stop_timeout: float,
) -> None:
    """``SIGTERM`` to every running job (its fit saves a checkpoint), then cancel what is left."""
    for job, _ in running.values():
        if launcher == "submitit-local":
            try:  # the local job id is its controller's pid, which forwards SIGTERM to the task
                os.kill(int(job.job_id), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
        else:
            job.cancel(check=False)  # scancel: SLURM sends SIGTERM, then SIGKILL after KillWait
    deadline = time.monotonic() + stop_timeout
    while running and time.monotonic() < deadline:
        _collect_finished(running, done, report)
        time.sleep(0.2)
    for key, (job, point) in running.items():
        job.cancel(check=False)
        done[key] = PointResult(point.name, "interrupted", 0.0, f"job {job.job_id} cancelled", "", str(job.job_id))
        report(done[key])
