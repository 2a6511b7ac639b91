"""A bench's user layers (``sclc bench run --config LAYER``, ``bench.run(layers=...)``): YAML
read after every task's recipe files, to say where the data and weights are, which devices to
use, or to size the tasks down.

A layer is checked whole before anything is written: it must be a mapping the ``sclc fit``
parser accepts with every task's recipe files; it may not set what a method sets (a corrector,
the mixing policy, λ: the reference arms and every method would run it while the card says
otherwise) nor what the bench sets for every point (the seed, the run's folder, a checkpoint
to resume); it may not end a task's runs before the generation the task reads, nor drop a
callback of the task (a layer's ``trainer.callbacks`` replaces the recipe's list: restate the
metric's callback). Its bytes are part of every task's digest. When the bench starts, each layer
is copied into ``<out>/layers/`` and the points read that copy, so that editing the file while
a bench runs changes nothing, and the card names the copy (not a path of the machine).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sclc_lightning._files import atomic_write, read_regular
from sclc_lightning.bench.methods import METHOD_SETTINGS
from sclc_lightning.bench.tasks import Task

__all__ = ["LayerError", "check_layers", "snapshot_layers"]

#: What the bench sets for every point, which a layer may not set.
_BENCH_SETS = {
    "seed_everything": "the bench seeds every point (--seeds)",
    "run_dir": "the bench gives every point its folder under --out",
    "ckpt_path": "the bench resumes every point from its own checkpoint",
    "loop.seed": "the bench seeds every point (--seeds)",
    "loop.output_dir": "the bench gives every point its folder under --out",
}


class LayerError(ValueError):
    """A layer that the bench refuses, naming the file and what to change."""


def _read(layer: str | Path) -> dict[str, Any]:
    """The mapping of ``layer`` (a YAML file)."""
    import yaml

    path = Path(layer)
    if not path.is_file():
        raise FileNotFoundError(
            f"The layer {layer} is not a file (--config of sclc bench run: a YAML file; a relative path is"
            f" read from {Path.cwd()})."
        )
    try:
        loaded = yaml.safe_load(read_regular(path).decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise LayerError(f"The layer {layer} is not readable YAML ({first}).") from None
    if not isinstance(loaded, dict) or not loaded:
        what = "empty" if loaded in (None, {}) else f"a {type(loaded).__name__}, not a mapping"
        raise LayerError(
            f"The layer {layer} is {what}: give a mapping of settings (e.g. `data: {{init_args: {{root: ...}}}}`),"
            " or leave the layer out."
        )
    return loaded


def _refuse_settings(layer: str | Path, given: dict[str, Any]) -> None:
    erased = [str(key) for key, value in given.items() if value is None]
    if erased:
        raise LayerError(
            f"The layer {layer} sets {', '.join(erased)} to nothing (null), which would erase the task's settings"
            " there; give the settings to change, or remove the key."
        )
    found = given.get("loop")
    loop: dict[str, Any] = found if isinstance(found, dict) else {}
    keys = [*given, *(f"loop.{key}" for key in loop)]
    for key in keys:
        if key in _BENCH_SETS:
            raise LayerError(f"The layer {layer} sets {key}: {_BENCH_SETS[key]}. Remove it from the layer.")
    methods = [f"loop.{key}" for key in loop if key in METHOD_SETTINGS]
    if methods:
        raise LayerError(
            f"The layer {layer} sets {', '.join(methods)}, which a method sets (λ and the mode: the task's"
            " collapse setting): the reference arms and every method would run it while the card says otherwise."
            " Give it as a method (--method NAME=SPEC), or define your own task (bench.run(tasks=[Task(...)]))."
        )


def _parsed(configs: Sequence[str]) -> dict[str, Any]:
    """The configuration ``sclc fit`` makes of ``configs``.

    Raises:
        ValueError: the parser's message, when it refuses them.
    """
    import yaml

    from sclc_lightning.lightning_cli import CLIError, run_lightning_cli

    printed, said = io.StringIO(), io.StringIO()
    code: Any = 0
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(said), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            run_lightning_cli(["fit", *(w for c in configs for w in ("--config", c)), "--print_config"])
        except CLIError as err:
            raise ValueError(f"sclc fit: {err}") from None
        except SystemExit as ended:
            code = ended.code
    if code not in (0, None):
        lines = [line.strip() for line in said.getvalue().splitlines() if line.strip()]
        errors = [line for line in lines if "error:" in line] or lines[-6:]
        raise ValueError(" ".join(errors) or f"sclc fit exited with {code}")
    loaded = yaml.safe_load(printed.getvalue())
    return loaded if isinstance(loaded, dict) else {}


def _callbacks(config: dict[str, Any]) -> set[str]:
    listed = (config.get("trainer") or {}).get("callbacks") or []
    return {c.get("class_path", "") for c in listed if isinstance(c, dict)}


def _check_with_task(task: Task, layers: Sequence[str], recipes: str | None) -> None:
    configs = task.configs(recipes)
    named = ", ".join(layers)
    try:
        with_layers = _parsed([*configs, *layers])
    except ValueError as err:
        raise LayerError(f"Task {task.name!r} with the layer(s) {named}: sclc fit refuses them ({err}).") from None
    generations = (with_layers.get("loop") or {}).get("generations")
    if isinstance(generations, int) and generations < task.generation:
        raise LayerError(
            f"Task {task.name!r} with the layer(s) {named}: loop.generations is {generations}, before generation"
            f" {task.generation} where the task reads its metric; set it to at least {task.generation}."
        )
    dropped = sorted(_callbacks(_parsed(configs)) - _callbacks(with_layers))
    if dropped:
        raise LayerError(
            f"Task {task.name!r} with the layer(s) {named}: the layer's trainer.callbacks replaces the task's list"
            f" and drops {', '.join(c.rsplit('.', 1)[-1] for c in dropped)}, which the task needs (its metric);"
            " restate it in the layer's list."
        )


def check_layers(tasks: list[Task], layers: Sequence[str | Path] | None, recipes: str | None = None) -> list[Task]:
    """``tasks`` with ``layers`` read after each one's recipe files, once every layer is checked
    with every task (see the module's text).

    Raises:
        LayerError: ``layers`` is not a list of paths, or a layer is refused (naming it).
        FileNotFoundError: naming a layer that is not a file.
    """
    if layers is None:
        return tasks
    if isinstance(layers, (str, Path)) or not isinstance(layers, (list, tuple)):
        raise LayerError(f"`layers` must be a list of YAML files, got {layers!r}.")
    paths = []
    for layer in layers:
        if not isinstance(layer, (str, Path)) or not str(layer):
            raise LayerError(f"`layers` (--config) must be YAML files, got {layer!r} among them.")
        _refuse_settings(layer, _read(layer))
        paths.append(str(Path(layer).resolve()))
    for task in tasks:
        _check_with_task(task, paths, recipes)
    return [dataclasses.replace(task, recipe=(*task.recipe, *paths)) for task in tasks]


def snapshot_layers(
    out: Path, tasks: list[Task], layers: Sequence[str | Path] | None, recipes: str | None = None
) -> list[Task]:
    """``tasks`` reading copies of ``layers`` kept in ``<out>/layers/`` (named by their content's
    digest), written there once.

    Raises:
        LayerError: a layer changed since the bench was planned.
    """
    if not layers:
        return tasks
    copies: dict[str, str] = {}
    for layer in layers:
        source = str(Path(layer).resolve())
        data = read_regular(Path(source))
        copy = out / "layers" / f"{hashlib.sha256(data).hexdigest()[:16]}.yaml"  # by content: a moved file resumes
        if not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(copy, data)
        copies[source] = str(copy)
    copied = [dataclasses.replace(t, recipe=tuple(copies.get(r, r) for r in t.recipe)) for t in tasks]
    for before, after in zip(tasks, copied):
        if before.digest(recipes) != after.digest(recipes):
            raise LayerError(f"A layer of task {before.name!r} changed while the bench started; rerun it.")
    return copied
