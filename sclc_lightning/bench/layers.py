"""A bench's user layers (``sclc bench run --config LAYER``, ``bench.run(layers=...)``): YAML
read after every task's recipe files, to say where the data and weights are, which devices to
use, or to size the tasks down.

A layer is read once, and those bytes are what is checked, digested and run. It must be a
self-contained mapping (no ``config:`` key naming another file, no section given as a string)
that the ``sclc fit`` parser accepts with every task's recipe files. Then the configuration it
gives is compared with the task's own: a layer may not change what a method sets (a corrector,
the mixing policy, λ: the reference arms and every method would run it while the card says
otherwise) nor what the bench sets for every point (the seed, the run's folder, a checkpoint to
resume), in whatever form it says it; it may not end a task's runs before the generation the task
reads, nor drop a callback class of the task (a layer's ``trainer.callbacks`` replaces the
recipe's list: restate the metric's callback). Its bytes are part of every task's digest. When
the bench starts, each layer is copied into ``<out>/layers/`` and the points read that copy, so
that editing the file while a bench runs changes nothing, and the card names the copy (not a
path of the machine).
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

#: What the bench sets for every point (a dotted path of the parsed configuration), which a layer
#: may not change.
_BENCH_SETS = {
    "seed_everything": "the bench seeds every point (--seeds)",
    "run_dir": "the bench gives every point its folder under --out",
    "ckpt_path": "the bench resumes every point from its own checkpoint",
    "loop.seed": "the bench seeds every point (--seeds)",
    "loop.output_dir": "the bench gives every point its folder under --out",
}
#: The sections of a configuration, each a mapping in a layer.
_SECTIONS = ("trainer", "model", "data", "loop", "optimizer", "lr_scheduler")
#: The layers' bytes as checked, by the path of this process's private copy (see :func:`check_layers`).
_CHECKED: dict[str, bytes] = {}
_FOLDER: list[str] = []  # the private copies' folder, made once per process


class LayerError(ValueError):
    """A layer that the bench refuses, naming the file and what to change."""


def _read(layer: str | Path) -> tuple[bytes, dict[str, Any]]:
    """The bytes of ``layer`` (a YAML file) and the mapping they hold."""
    import yaml

    path = Path(layer)
    if not path.is_file():
        raise FileNotFoundError(
            f"The layer {layer} is not a file (--config of sclc bench run: a YAML file; a relative path is"
            f" read from {Path.cwd()})."
        )
    try:
        data = read_regular(path.resolve())
        loaded = yaml.safe_load(data.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise LayerError(f"The layer {layer} is not readable YAML ({first}).") from None
    if not isinstance(loaded, dict) or not loaded:
        what = "empty" if loaded in (None, {}) else f"a {type(loaded).__name__}, not a mapping"
        raise LayerError(
            f"The layer {layer} is {what}: give a mapping of settings (e.g. `data: {{init_args: {{root: ...}}}}`),"
            " or leave the layer out."
        )
    return data, loaded


def _keys(value: Any) -> list[str]:
    """Every key of the mappings nested in ``value``."""
    if isinstance(value, dict):
        return [str(k) for k in value] + [key for v in value.values() for key in _keys(v)]
    if isinstance(value, list):
        return [key for v in value for key in _keys(v)]
    return []


def _refuse_shape(layer: str | Path, given: dict[str, Any]) -> None:
    """A layer that is not self-contained, or sets a section to nothing or to a string."""
    if any(key == "config" or key.endswith(".config") for key in _keys(given)):
        raise LayerError(
            f"The layer {layer} names another file with a `config` key: the bench checks, digests and copies the"
            " layer's own bytes only; write those settings in the layer itself."
        )
    for key, value in given.items():
        if value is None:
            raise LayerError(
                f"The layer {layer} sets {key} to nothing (null), which would erase the task's settings there; give"
                " the settings to change, or remove the key."
            )
        if key in _SECTIONS and not isinstance(value, dict):
            raise LayerError(
                f"The layer {layer} gives {key} as a {type(value).__name__}: give it as a mapping of settings (a"
                " string would be read as another file or as YAML text, which the bench does not check)."
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


def _class(path: str) -> Any:
    """The class a callback's ``class_path`` names (a bare name: one of the package's or
    Lightning's callbacks), or the text itself where it does not import."""
    import importlib

    module, _, name = path.rpartition(".")
    for where in [module] if module else ["sclc_lightning.callbacks", "lightning.pytorch.callbacks"]:
        with contextlib.suppress(ImportError, AttributeError, ValueError):
            return getattr(importlib.import_module(where), name)
    return path


def _callbacks(config: dict[str, Any]) -> dict[Any, str]:
    """The callback classes of a parsed configuration, with their names."""
    listed = (config.get("trainer") or {}).get("callbacks") or []
    listed = [listed] if isinstance(listed, dict) else listed
    paths = [c.get("class_path", "") for c in listed if isinstance(c, dict)]
    return {_class(path): path.rsplit(".", 1)[-1] for path in paths}


def _at(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _changed(task: Task, own: dict[str, Any], layered: dict[str, Any], named: str) -> None:
    """Refuse what the layers change that a method or the bench sets."""
    for key, why in _BENCH_SETS.items():
        if _at(own, key) != _at(layered, key):
            raise LayerError(f"The layer {named} sets {key}: {why}. Remove it from the layer.")
    methods = [f"loop.{key}" for key in METHOD_SETTINGS if _at(own, f"loop.{key}") != _at(layered, f"loop.{key}")]
    if methods:
        collapse = any(m in ("loop.synthetic_fraction", "loop.mode") for m in methods)
        raise LayerError(
            f"The layer {named} sets {', '.join(methods)}, which a method sets"
            f"{' (λ and the mode: the task' + chr(39) + 's collapse setting)' if collapse else ''}: the reference"
            f" arms and every method of task {task.name!r} would run it while the card says otherwise. Give it as"
            " a method (--method NAME=SPEC), or define your own task (bench.run(tasks=[Task(...)]))."
        )


def _check_with_task(task: Task, layers: Sequence[str], recipes: str | None, named: str) -> None:
    configs = task.configs(recipes)
    try:
        layered = _parsed([*configs, *layers])
    except ValueError as err:
        raise LayerError(f"Task {task.name!r} with the layer {named}: sclc fit refuses them ({err}).") from None
    own = _parsed(configs)
    _changed(task, own, layered, named)
    generations = _at(layered, "loop.generations")
    if isinstance(generations, int) and generations < task.generation:
        raise LayerError(
            f"Task {task.name!r} with the layer {named}: loop.generations is {generations}, before generation"
            f" {task.generation} where the task reads its metric; set it to at least {task.generation}."
        )
    kept = _callbacks(layered)
    dropped = sorted(name for cls, name in _callbacks(own).items() if cls not in kept)
    if dropped:
        raise LayerError(
            f"Task {task.name!r} with the layer {named}: the layer's trainer.callbacks replaces the task's list"
            f" and drops {', '.join(dropped)}, which the task needs (its metric); restate it in the layer's list."
        )


def check_layers(tasks: list[Task], layers: Sequence[str | Path] | None, recipes: str | None = None) -> list[Task]:
    """``tasks`` with ``layers`` read after each one's recipe files, once every layer is checked
    with every task (see the module's text). Each layer is read once: the tasks read a private
    copy of the bytes that were checked, which :func:`snapshot_layers` copies into the bench.

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
        data, given = _read(layer)
        _refuse_shape(layer, given)
        paths.append(_private_copy(data))
    named = ", ".join(str(layer) for layer in layers)
    for task in tasks:
        _check_with_task(task, paths, recipes, named)
    return [dataclasses.replace(task, recipe=(*task.recipe, *paths)) for task in tasks]


def _private_copy(data: bytes) -> str:
    """A file of this process holding ``data``, named by its digest (removed at exit)."""
    import atexit
    import shutil
    import tempfile

    if not _FOLDER:
        _FOLDER.append(tempfile.mkdtemp(prefix="sclc-bench-layers-"))
        atexit.register(shutil.rmtree, _FOLDER[0], True)
    path = Path(_FOLDER[0]) / f"{hashlib.sha256(data).hexdigest()[:16]}.yaml"
    if not path.exists():
        atomic_write(path, data)
    _CHECKED[str(path)] = data
    return str(path)


def snapshot_layers(out: Path, tasks: list[Task], layers: Sequence[str | Path] | None) -> list[Task]:
    """``tasks`` reading copies of their checked layers kept in ``<out>/layers/`` (named by
    their content's digest), written there once.

    Raises:
        LayerError: a copy in ``<out>/layers/`` was edited.
    """
    if not layers:
        return tasks
    copies: dict[str, str] = {}
    for private, data in _CHECKED.items():
        if not any(private in t.recipe for t in tasks):
            continue
        copy = Path(out).resolve() / "layers" / Path(private).name  # by content: the same bytes, the same copy
        if not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(copy, data)
        elif read_regular(copy) != data:
            raise LayerError(
                f"{copy} (the bench's copy of a layer) was edited: delete it (the bench writes it again from your"
                " layer) and rerun."
            )
        copies[private] = str(copy)
    return [dataclasses.replace(t, recipe=tuple(copies.get(r, r) for r in t.recipe)) for t in tasks]
