"""The bench card: ``<out>/bench.json``, what a bench measured, in a documented and versioned
layout (``docs/bench.md``, "The card"), the same bytes whenever the same bench is run again.

.. code-block:: text

    {"format": 1, "suite": ..., "seeds": [...], "versions": {package: version},
     "methods": {NAME: {"settings", "per_task", "needs", "part"}},
     "tasks": {TASK: {"claim", "recipe", "digest", "metric", "direction", "generation", "theory",
                      "traits", "collapse": true | false, "reason",
                      "methods": {NAME: {"status": "ok" | "failed" | "skipped", "reason",
                                         "values": [per seed], "mean", "interval": [lo, hi],
                                         "score", "score_interval": [lo, hi]}}}},
     "aggregate": {NAME: {"score", "score_interval", "tasks": [scored tasks], "unscored": [...]}}}

The reference arms (``real_only``, ``uncorrected``) are among the methods. A task whose reference
arms do not differ beyond their seeds' spread has ``"collapse": false``, its reason, and no score
(``null``); a method skipped on a task has its reason and no values.

The aggregate over the suite is the mean of a method's task scores; its interval is that mean
plus or minus the root of the sum of the squared half-widths of the task intervals, over the
number of tasks (the tasks' seeds are independent, so the half-widths add in quadrature).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sclc_lightning._files import atomic_write
from sclc_lightning.bench.score import mean_interval, score_task

if TYPE_CHECKING:
    from sclc_lightning.bench.methods import Method
    from sclc_lightning.bench.runner import BenchPlan
    from sclc_lightning.bench.tasks import Task

__all__ = ["CARD_FORMAT", "build_card", "method_record", "read_card", "read_metric", "strict_json", "write_card"]

#: The card layout's version; a reader refuses another.
CARD_FORMAT = 1
_PACKAGES = ("sclc-lightning", "torch", "lightning", "numpy", "scipy", "scikit-learn", "diffusers", "transformers")


def method_record(method: Method) -> dict[str, Any]:
    """What the card records of a method: its settings (a class or callable given by import path
    with the digest of its code), settings per task, needs and task part."""
    from sclc_lightning._callables import recorded_settings

    return {
        "settings": recorded_settings(method.settings),
        "per_task": recorded_settings(method.per_task),
        "needs": list(method.needs),
        "part": method.part,
    }


def strict_json(value: Any) -> Any:
    """``value`` with non-finite floats as strings (``"inf"``): the card is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf" if value < 0 else "nan"
    if isinstance(value, Mapping):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def versions() -> dict[str, str]:
    """Python's and the packages' versions."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def read_metric(run_dir: Path, metric: str, generation: int | None = None, name: str | None = None) -> dict[int, float]:
    """``metric`` by generation from ``<run_dir>/metrics.csv`` (``generation``: only that one).

    Raises:
        ValueError: naming the file (as ``name`` when given): it is missing, is not the CSV a run
            writes, has no such column, or no finite value at ``generation``.
    """
    path = run_dir / "metrics.csv"
    said = name or str(path)
    if not path.is_file():
        raise ValueError(f"{said} is missing: the run wrote no metrics.")
    series: dict[int, float] = {}
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            if metric not in (reader.fieldnames or []) or "generation" not in (reader.fieldnames or []):
                raise ValueError(f"{said} has no column {metric!r} (it has {list(reader.fieldnames or [])}).")
            for row in reader:
                if row.get(metric) not in (None, ""):
                    series[int(float(row["generation"]))] = float(row[metric])
    except (csv.Error, UnicodeDecodeError, TypeError) as err:
        raise ValueError(f"{said} is not the CSV a run writes ({err}).") from None
    if generation is not None:
        if series and generation > max(series):
            raise ValueError(
                f"{said} ends at generation {max(series)}, before generation {generation} where the task reads"
                " its metric (a layer that sets loop.generations lower than that leaves nothing to read)."
            )
        if generation not in series or not math.isfinite(series[generation]):
            raise ValueError(f"{said} has no finite {metric!r} at generation {generation}.")
        return {generation: series[generation]}
    return series


def point_rows(out: Path, task: str) -> dict[tuple[str, int], dict[str, str]]:
    """The rows of a task's ``runs.csv`` by (method, seed)."""
    path = out / "runs" / task / "runs.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        return {(row["method"], int(row["seed"])): row for row in csv.DictReader(handle)}


def _arm(
    rows: dict[tuple[str, int], dict[str, str]], name: str, task: Task, seeds: Sequence[int], out: Path
) -> dict[str, Any]:
    """One arm's values over the seeds, or why it has none."""
    values, problems = [], []
    for seed in seeds:
        row = rows.get((name, seed))
        if row is None or row["status"] != "ok":
            status = "not run" if row is None else row["status"]
            problems.append(f"seed {seed}: {status}{': ' + row['error'] if row and row.get('error') else ''}")
            continue
        point = f"runs/{task.name}/{row['name']}"
        try:
            values.append(
                read_metric(out / point, task.metric, task.generation, f"{point}/metrics.csv")[task.generation]
            )
        except ValueError as err:
            problems.append(
                f"seed {seed}: {err} If the run's files were lost, remove the folder {point} and rerun the bench;"
                " if its configuration does not log the metric, fix it and run the bench into another --out."
            )
    if problems:
        return {"status": "failed", "reason": "; ".join(problems)}
    mean, interval = mean_interval(values)
    return {"status": "ok", "reason": "", "values": values, "mean": mean, "interval": interval and interval.to_list()}


def _task_entry(plan: BenchPlan, task: Task, out: Path) -> dict[str, Any]:
    rows = point_rows(out, task.name)
    entry = task.describe(plan.recipes)
    # a user layer's copy in <out>/layers/ is named relative to the bench, not by a path of the machine
    root = Path(out).resolve()
    entry["recipe"] = [Path(r).relative_to(root).as_posix() if Path(r).is_relative_to(root) else r for r in task.recipe]
    methods: dict[str, dict[str, Any]] = {}
    for name in plan.methods:
        why = plan.skipped[task.name].get(name)
        methods[name] = {"status": "skipped", "reason": why} if why else _arm(rows, name, task, plan.seeds, out)
    real, uncorrected = methods["real_only"], methods["uncorrected"]
    if real["status"] != "ok" or uncorrected["status"] != "ok":
        entry.update(collapse=None, reason="a reference arm has no values: no score on this task")
    else:
        probe = score_task(real["values"], real["values"], uncorrected["values"], task.direction)
        entry.update(collapse=probe.score is not None, reason=probe.reason)
        for arm in methods.values():
            if arm["status"] == "ok" and probe.score is not None:
                result = score_task(arm["values"], real["values"], uncorrected["values"], task.direction)
                arm.update(score=result.score, score_interval=result.interval and result.interval.to_list())
    for arm in methods.values():  # every key of the layout, null where there is no value
        for key in ("values", "mean", "interval", "score", "score_interval"):
            arm.setdefault(key, None)
    entry["methods"] = methods
    return entry


def _aggregate(tasks: dict[str, dict[str, Any]], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    found = {}
    for name in names:
        scored = [(t, e["methods"][name]) for t, e in tasks.items() if e["methods"][name].get("score") is not None]
        unscored = [t for t in tasks if t not in dict(scored)]
        if not scored:
            found[name] = {"score": None, "score_interval": None, "tasks": [], "unscored": unscored}
            continue
        mean = sum(arm["score"] for _, arm in scored) / len(scored)
        half = math.sqrt(sum(((arm["score_interval"][1] - arm["score_interval"][0]) / 2) ** 2 for _, arm in scored))
        half /= len(scored)
        found[name] = {
            "score": mean,
            "score_interval": [mean - half, mean + half],
            "tasks": [t for t, _ in scored],
            "unscored": unscored,
        }
    return found


def build_card(plan: BenchPlan, out: Path) -> dict[str, Any]:
    """The card of the bench ``plan`` whose runs are under ``out``."""
    tasks = {task.name: _task_entry(plan, task, out) for task in plan.tasks}
    card = {
        "format": CARD_FORMAT,
        "suite": plan.suite,
        "seeds": plan.seeds,
        "versions": versions(),
        "methods": {name: method_record(m) for name, m in plan.methods.items()},
        "tasks": tasks,
        "aggregate": _aggregate(tasks, list(plan.methods)),
    }
    return dict(strict_json(card))


def card_text(card: dict[str, Any]) -> str:
    """The card as ``bench.json`` holds it (sorted keys: the same card gives the same bytes)."""
    return json.dumps(card, indent=1, sort_keys=True, allow_nan=False) + "\n"


def read_card(path: str | Path) -> dict[str, Any]:
    """A card read back, checked for its format.

    Raises:
        ValueError: naming the file: not JSON, not a card, or another format.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "bench.json"
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} cannot be read as a bench card ({err}).") from None
    if not isinstance(card, dict) or "format" not in card:
        raise ValueError(f"{path} is not a bench card (no `format`).")
    if card.get("format") != CARD_FORMAT:
        raise ValueError(f"{path} is a card of format {card.get('format')!r}; this version reads {CARD_FORMAT}.")
    if not isinstance(card.get("tasks"), dict) or not isinstance(card.get("seeds"), list):
        raise ValueError(f"{path} is not a bench card (no `tasks` or `seeds`).")
    return card


def write_card(card: dict[str, Any], out: Path) -> Path:
    """Write ``<out>/bench.json``."""
    path = out / "bench.json"
    atomic_write(path, card_text(card))
    return path
