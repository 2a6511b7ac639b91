"""The grid from Python: :func:`run_grid` runs what ``sclc grid`` runs and returns its runs table.

A grid may have a method axis: ``methods={"ot": {"corrector": "optimal_transport", ...}, ...}``
(each a :class:`~sclc_lightning.bench.Method`, a mapping of loop settings, inline JSON or a YAML
file). Each method's settings are written to ``<out>/methods/<name>.yaml`` under ``loop:`` and read
after the recipe files, so that a corrector is paired with its own arguments (a Cartesian ``--set``
axis cannot pair them). A method that names a corrector, mixing policy or model corrector without
its ``*_kwargs`` runs it with none: the recipe's arguments for another one are never carried over.

Examples:
    >>> layer_settings({"corrector": "kmeans"})
    {'corrector': 'kmeans', 'corrector_kwargs': None}
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sclc_lightning._files import atomic_write, check_local_folder
from sclc_lightning.grid.points import GridPoint, check_seeds, expand_grid, gpu_slots, visible_gpus
from sclc_lightning.grid.status import GridSpec

__all__ = ["RunsTable", "layer_settings", "method_layers", "run_grid"]

#: The settings whose ``*_kwargs`` belong to them.
_COMPONENTS = ("corrector", "mode", "model_corrector")


@dataclass(frozen=True)
class RunsTable:
    """What a grid run returns.

    Attributes:
        out: the grid folder.
        rows: ``<out>/runs.csv``, one dict per point (name, status, seconds, run_dir, method, the
            axes' values, seed, the final metrics as ``final_<name>``, error).
        exit_code: what ``sclc grid`` would exit with (0 every point finished, 1 one failed or is
            left to do, 128 + the signal when one stopped it, 2 the folder is locked).
    """

    out: Path
    rows: list[dict[str, str]]
    exit_code: int


def layer_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A method's loop settings as its layer gives them: a component without its ``*_kwargs``
    gets none (``None``), so that the recipe's arguments for another one are not kept."""
    layer = dict(settings)
    for component in _COMPONENTS:
        if component in layer and f"{component}_kwargs" not in layer:
            layer[f"{component}_kwargs"] = None
    return layer


def method_layers(methods: Mapping[str, Any], task: str | None = None) -> dict[str, dict[str, Any]]:
    """The layer settings of each method (``task``: with its settings for that task).

    Raises:
        ValueError: a method does not parse, or (``task`` is ``None``) has settings per task.
    """
    from sclc_lightning.bench.methods import Method, parse_method

    layers = {}
    for name, spec in methods.items():
        method = spec if isinstance(spec, Method) else parse_method(name, spec)
        if task is None and method.per_task:
            raise ValueError(
                f"Method {name!r} has settings per task ({sorted(method.per_task)}): only `sclc bench` has tasks."
            )
        if task is None and method.needs:
            raise ValueError(f"Method {name!r} has `needs` ({list(method.needs)}): only `sclc bench` skips tasks.")
        layers[method.name] = layer_settings(method.settings_for(task or ""))
    return layers


def write_layers(out: Path, layers: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Write each method's ``<out>/methods/<name>.yaml``; their paths by name."""
    paths = {}
    for name, settings in layers.items():
        path = out / "methods" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, yaml.safe_dump({"loop": json.loads(json.dumps(settings))}, sort_keys=True))
        paths[name] = str(path.resolve())
    return paths


def read_table(out: Path) -> list[dict[str, str]]:
    """``<out>/runs.csv`` as rows (none when it is not written yet)."""
    path = out / "runs.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def run_grid(
    config: str | Sequence[str],
    *,
    out: str | Path,
    sets: Sequence[str] = (),
    methods: Mapping[str, Any] | None = None,
    seeds: str | Sequence[int] | None = None,
    launcher: str = "local",
    jobs: int = 1,
    gpus: str = "auto",
    rerun_failed: bool = False,
    stop_timeout: float = 30.0,
    detach: bool = False,
    slurm: Mapping[str, Any] | None = None,
    extra: Sequence[str] = (),
    task: str | None = None,
) -> RunsTable:
    """Run a grid as ``sclc grid`` does (same folder layout, same resumption: a finished point is
    never rerun) and return its runs table. The arguments are the command's options; ``task``
    names the bench task whose ``per_task`` settings the methods take.

    Raises:
        ValueError: an argument the command would refuse, or ``out`` holds another grid.
    """
    from sclc_lightning.grid.running import LAUNCHERS, cluster_options, run_locked

    refuse_in_worker("run_grid")

    configs = [config] if isinstance(config, str) else list(config)
    if launcher not in LAUNCHERS:
        raise ValueError(f"`launcher` must be one of {list(LAUNCHERS)}, got {launcher!r}.")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"`jobs` must be an integer >= 1, got {jobs!r}.")
    for path in configs:
        if not Path(path).is_file():
            raise ValueError(f"config {path}: no such file")
    seed_list = None if seeds is None else check_seeds(seeds)
    layers = method_layers(methods, task) if methods else None
    check_local_folder(out, "`out`")
    out = Path(out)
    points = _points(sets, seed_list, extra, out, layers)
    args = argparse.Namespace(
        config=configs,
        launcher=launcher,
        jobs=jobs,
        rerun_failed=rerun_failed,
        stop_timeout=stop_timeout,
        detach=detach,
        **{f"slurm_{k}": v for k, v in (slurm or {}).items()},
    )
    options = cluster_options(configs, slurm or {}, launcher) if launcher != "local" else None
    slots = gpu_slots(visible_gpus(gpus, jobs), jobs) if launcher == "local" else []
    GridSpec.of(configs, sets, seed_list, extra, layers).save_or_check(out)
    if layers:
        write_layers(out, layers)
    code = run_locked(args, points, out, options, slots)
    return RunsTable(out, read_table(out), code)


def refuse_in_worker(what: str) -> None:
    """Refuse to start a grid from a worker process: a script without an ``if __name__ ==
    "__main__":`` guard runs again in every worker the grid starts (Python's ``spawn``).

    Raises:
        RuntimeError: naming the fix.
    """
    import inspect
    import multiprocessing

    # a spawned worker runs the parent's script as `__mp_main__`, before it knows its parent
    spawning = any(frame.frame.f_globals.get("__name__") == "__mp_main__" for frame in inspect.stack(0))
    if spawning or multiprocessing.parent_process() is not None:
        raise RuntimeError(
            f"{what} was called in a worker process: the script that calls it runs again in each worker the grid"
            ' starts. Put the call under `if __name__ == "__main__":`.'
        )


def _points(
    sets: Sequence[str],
    seeds: list[int] | None,
    extra: Sequence[str],
    out: Path,
    layers: Mapping[str, Any] | None,
) -> list[GridPoint]:
    paths = {name: str((out / "methods" / f"{name}.yaml").resolve()) for name in layers} if layers else None
    return expand_grid(sets, seeds, extra, paths)
