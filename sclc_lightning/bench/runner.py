"""Running a bench: every task's arms (the reference arms and the applicable methods) over the
same seeds, through the grid machinery (one grid per task in ``<out>/runs/<task>``, with a method
axis), then the card.

A rerun of the same bench into the same ``out`` resumes: a finished point is never rerun, an
interrupted one resumes from its last checkpoint. ``<out>/bench_spec.json`` holds the bench's
definition (suite, tasks and their digests, methods, seeds); a rerun that defines another bench
there is refused.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sclc_lightning._files import atomic_write, check_local_folder, read_regular
from sclc_lightning.bench.builtin import BUILTIN_METHODS, REFERENCES
from sclc_lightning.bench.card import method_record, strict_json
from sclc_lightning.bench.layers import check_layers, snapshot_layers
from sclc_lightning.bench.methods import Method, parse_method
from sclc_lightning.bench.tasks import Task, suite_tasks

__all__ = ["BenchError", "BenchPlan", "plan_bench", "run"]


class BenchError(ValueError):
    """A bench that cannot run as asked (a reserved method name, another bench in ``out``)."""


@dataclass(frozen=True)
class BenchPlan:
    """What a bench runs: its tasks, its methods (the references first) and seeds, and for each
    task the methods skipped there, with the reason."""

    suite: str
    tasks: list[Task]
    methods: dict[str, Method]
    seeds: list[int]
    recipes: str | None
    skipped: dict[str, dict[str, str]]

    def arms(self, task: Task) -> dict[str, Method]:
        """The methods that run on ``task``, with its parts merged in."""
        return {name: m.for_task(task) for name, m in self.methods.items() if name not in self.skipped[task.name]}

    def spec(self) -> dict[str, Any]:
        """The bench's definition, as ``bench_spec.json`` keeps it."""
        return strict_json(
            {
                "suite": self.suite,
                "seeds": self.seeds,
                "tasks": {t.name: t.digest(self.recipes) for t in self.tasks},
                "methods": {name: method_record(m) for name, m in self.methods.items()},
            }
        )


def plan_bench(
    suite: str = "quick",
    methods: Mapping[str, Any] | None = None,
    seeds: str | Sequence[int] = "0-2",
    *,
    builtin: bool | Sequence[str] = False,
    tasks: Sequence[str | Task] | None = None,
    recipes: str | None = None,
    layers: Sequence[str | Path] | None = None,
) -> BenchPlan:
    """The plan of a bench (nothing runs): see :func:`run` for the arguments.

    Raises:
        BenchError: a method named as a reference arm or twice, an unknown built-in.
        ValueError: a method that does not parse, an unknown suite or task, bad seeds, a layer
            refused (:class:`~sclc_lightning.bench.layers.LayerError`).
        FileNotFoundError: a layer that is not a file.
    """
    from sclc_lightning.grid.points import check_seeds

    seed_list = sorted(check_seeds(seeds))
    if len(seed_list) < 2:
        raise ValueError(f"A bench needs at least 2 seeds (an interval needs a spread), got {seed_list}.")
    chosen = check_layers(_tasks(suite, tasks), layers, recipes)
    arms: dict[str, Method] = dict(REFERENCES)
    if not isinstance(builtin, bool) and (
        isinstance(builtin, str)
        or not isinstance(builtin, (list, tuple))
        or not all(isinstance(n, str) for n in builtin)
    ):
        raise BenchError(f"`builtin` must be True, False or a list of built-in method names, got {builtin!r}.")
    if methods is not None and not isinstance(methods, Mapping):
        raise BenchError(f"`methods` must map names to settings ({{'mine': {{...}}}}), got {methods!r}.")
    names = list(BUILTIN_METHODS) if builtin is True else list(builtin or [])
    for name in names:
        if name not in BUILTIN_METHODS:
            raise BenchError(f"No built-in method {name!r}; they are {sorted(BUILTIN_METHODS)}.")
        arms[name] = BUILTIN_METHODS[name]
    for name, spec in (methods or {}).items():
        if name in arms:
            what = "a reference arm" if name in REFERENCES else "a built-in method already added"
            raise BenchError(f"Method name {name!r} is {what}; give your method another name.")
        arms[name] = spec if isinstance(spec, Method) else parse_method(name, spec)
        _check_task_names(arms[name], [t.name for t in chosen])
    skipped = {t.name: {n: why for n, m in arms.items() if (why := m.skipped_on(t)) is not None} for t in chosen}
    return BenchPlan(suite, chosen, arms, seed_list, recipes, skipped)


def _check_task_names(method: Method, chosen: Sequence[str]) -> None:
    """Refuse ``per_task`` settings for a task that no suite and no given task has (a typo)."""
    import difflib

    from sclc_lightning.bench.tasks import TASKS

    known = sorted(set(TASKS) | set(chosen))
    for task in method.per_task:
        if task not in known:
            near = difflib.get_close_matches(task, known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise BenchError(
                f"Method {method.name!r}: `per_task` names the task {task!r}{hint}; the tasks are {known}."
            )


def _tasks(suite: str, tasks: Sequence[str | Task] | None) -> list[Task]:
    if isinstance(tasks, (str, Task)) or (tasks is not None and not isinstance(tasks, (list, tuple))):
        raise BenchError(f"`tasks` must be a list of task names or Task objects, got {tasks!r}.")
    if tasks is not None and not tasks:
        raise BenchError("`tasks` is empty: give at least one task, or None for the whole suite.")
    if tasks is None:
        return suite_tasks(suite)
    own = [t for t in tasks if isinstance(t, Task)]
    named = suite_tasks(suite, [t for t in tasks if isinstance(t, str)]) if len(own) < len(tasks) else []
    chosen = named + own
    if len({t.name for t in chosen}) != len(chosen):
        raise ValueError(f"Two tasks share a name: {[t.name for t in chosen]}.")
    return chosen


def _save_or_check_spec(out: Path, spec: dict[str, Any]) -> None:
    path = out / "bench_spec.json"
    if path.exists():
        try:
            old = json.loads(read_regular(path))
        except (OSError, ValueError) as err:
            raise BenchError(f"{path} cannot be read ({err}); use another --out.") from None
        if old != spec:
            changed = (
                sorted(k for k in set(old) | set(spec) if old.get(k) != spec.get(k)) if isinstance(old, dict) else []
            )
            detail = ""
            if "tasks" in changed and isinstance(old.get("tasks"), dict):
                moved = sorted(t for t, d in spec["tasks"].items() if old["tasks"].get(t) not in (None, d))
                if moved:
                    detail = f"; the digests of {', '.join(moved)} differ: a recipe file or a layer changed"
            raise BenchError(
                f"{out} holds another bench (its {', '.join(changed) or 'definition'} differ{detail}): rerun it as it"
                " was, or use another --out."
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(spec, indent=1, sort_keys=True))


def _check_run_arguments(out: Any, launcher: Any, jobs: Any, figures: Any) -> Path:
    """``out`` as a path, once the arguments that are not the bench's definition are checked
    (before anything is written)."""
    from sclc_lightning.grid.running import LAUNCHERS

    if not isinstance(out, (str, Path)) or not str(out):
        raise BenchError(f"`out` must be a folder's path, got {out!r}.")
    try:
        check_local_folder(out, "`out`")
    except ValueError as err:
        raise BenchError(str(err)) from None
    if launcher not in LAUNCHERS:
        raise BenchError(f"`launcher` must be one of {list(LAUNCHERS)}, got {launcher!r}.")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise BenchError(f"`jobs` must be an integer >= 1, got {jobs!r}.")
    if not isinstance(figures, bool):
        raise BenchError(f"`figures` must be True or False, got {figures!r}.")
    path = Path(out)
    for folder in (path, *path.parents):
        if folder.exists() and not folder.is_dir():
            raise BenchError(f"`out` {path}: {folder} is a file, not a folder; give a folder.")
    return path


def _run_tasks(plan: BenchPlan, out: Path, grid: dict[str, Any]) -> None:
    """Each task's grid of arms × seeds, in ``<out>/runs/<task>``.

    Raises:
        RuntimeError: a signal stopped a grid.
    """
    from sclc_lightning.grid.api import run_grid

    for task in plan.tasks:
        print(f"sclc bench: task {task.name} ({len(plan.arms(task))} arms x {len(plan.seeds)} seeds)", flush=True)
        table = run_grid(
            task.configs(plan.recipes),
            out=out / "runs" / task.name,
            methods=plan.arms(task),
            seeds=plan.seeds,
            task=task.name,
            **grid,
        )
        if table.exit_code > 128:
            raise RuntimeError(f"sclc bench: stopped while running {task.name}; rerun the same bench to resume.")
        if table.exit_code == 2:
            raise RuntimeError(f"sclc bench: {out / 'runs' / task.name} is in use by another process (see above).")
        left = [row["name"] for row in table.rows if row["status"] not in ("ok", "failed")]
        if left:
            raise RuntimeError(
                f"sclc bench: {len(left)} point(s) of {task.name} did not run ({', '.join(left[:3])}"
                f"{', ...' if len(left) > 3 else ''}): their workers ended before running them. A script that"
                ' calls bench.run without `if __name__ == "__main__":` does that. No card is written; rerun the'
                " same bench to resume."
            )


def run(
    suite: str = "quick",
    methods: Mapping[str, Any] | None = None,
    seeds: str | Sequence[int] = "0-2",
    *,
    out: str | Path,
    builtin: bool | Sequence[str] = False,
    tasks: Sequence[str | Task] | None = None,
    recipes: str | None = None,
    layers: Sequence[str | Path] | None = None,
    launcher: str = "local",
    jobs: int = 1,
    rerun_failed: bool = False,
    slurm: Mapping[str, Any] | None = None,
    figures: bool = True,
) -> dict[str, Any]:
    """Run a bench and return its card (also written to ``<out>/bench.json``, with
    ``bench.html`` and the figures).

    Args:
        suite: the suite (``quick``).
        methods: your methods, by name: a :class:`~sclc_lightning.bench.Method`, a mapping of
            loop settings, inline JSON or a YAML file (:func:`~sclc_lightning.bench.parse_method`).
        seeds: ``"0-4"`` or a list; every arm runs every seed.
        out: the bench folder; a rerun into it resumes.
        builtin: ``True`` adds every built-in method, or a list of their names.
        tasks: only these tasks of the suite (names), or your own :class:`Task` objects.
        recipes: the recipes folder (default: the repository's).
        layers: YAML read after every task's recipe files (``--config``): where the data are, a
            smaller size. Checked before anything is written, part of every task's digest
            (:mod:`~sclc_lightning.bench.layers`).
        launcher: ``local``, ``submitit-local`` or ``slurm``, as ``sclc grid``'s.
        jobs: points running at once.
        rerun_failed: run failed points again.
        slurm: the SLURM options (``--slurm.*`` of ``sclc grid``: partition, time, ...).
        figures: draw the figures and ``bench.html`` (matplotlib).

    Raises:
        BenchError: see :func:`plan_bench`; a bad ``out``, ``launcher``, ``jobs`` or ``figures``;
            or ``out`` holds another bench.
        FileNotFoundError: a layer that is not a file.
        RuntimeError: a signal stopped the bench, or points were left unrun (rerun the same call
            to resume); no card is written then.
    """
    from sclc_lightning.bench.card import build_card, write_card
    from sclc_lightning.bench.page import write_page
    from sclc_lightning.grid.api import refuse_in_worker

    refuse_in_worker("sclc_lightning.bench.run")
    out = _check_run_arguments(out, launcher, jobs, figures)
    plan = plan_bench(suite, methods, seeds, builtin=builtin, tasks=tasks, recipes=recipes, layers=layers)
    _save_or_check_spec(out, plan.spec())
    plan = dataclasses.replace(plan, tasks=snapshot_layers(out, plan.tasks, layers))
    grid = {"launcher": launcher, "jobs": jobs, "rerun_failed": rerun_failed, "slurm": slurm}
    _run_tasks(plan, out, grid)
    card = build_card(plan, out)
    write_card(card, out)
    if figures:
        write_page(card, out)
    return card
