"""The ``sclc grid`` command."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from sclc_lightning.grid.points import expand_grid, parse_seeds
from sclc_lightning.grid.running import LAUNCHERS

__all__ = ["main"]

_SLURM_HELP = {
    "partition": "SLURM partition",
    "time": "time limit of one job in minutes (default 1440); a job at its limit is requeued and resumes",
    "nodes": "nodes per point (more than one: a multi-node DDP run)",
    "tasks_per_node": "tasks (DDP ranks) per node, usually the GPUs per node",
    "gpus_per_node": "GPUs per node",
    "cpus_per_task": "CPU cores per task",
    "mem_gb": "memory per node in GB",
    "account": "SLURM account",
    "qos": "SLURM quality of service",
    "constraint": "SLURM node constraint",
    "signal_delay_s": "seconds before the time limit at which the job checkpoints (default 120)",
    "max_requeues": "time limits a point may hit before it is given up (default 3)",
    "setup": "a shell line run before the job (repeatable), e.g. 'module load cuda'",
}
_TYPES: dict[str, Any] = {
    "time": int,
    "nodes": int,
    "tasks_per_node": int,
    "gpus_per_node": int,
    "cpus_per_task": int,
    "mem_gb": float,
    "signal_delay_s": int,
    "max_requeues": int,
}


class TwoLineParser(argparse.ArgumentParser):
    """Reports a bad argument in two lines, without the usage (``sclc grid``, ``sclc bench``)."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        print(f"{self.prog}: error: {message}\n(`{self.prog} --help` lists the options)", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = TwoLineParser(
        prog="sclc grid",
        description="Run a recipe over the cartesian grid of --set axes and --seeds, one `sclc fit` run per"
        " point in <out>/<point name>. Rerunning the same command with the same --out skips finished"
        " points and resumes interrupted ones from their last checkpoint.",
    )
    parser.add_argument(
        "--config",
        required=True,
        action="append",
        help="the recipe YAML; repeat it to layer files, later ones over earlier ones, as `sclc fit` does",
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2", help="a grid axis (repeatable)")
    parser.add_argument(
        "--method",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="a value of the method axis (repeatable): NAME and its loop settings, inline JSON or a YAML file"
        """ (e.g. 'ot={"corrector": "optimal_transport", "corrector_kwargs": {"strength": 1}}')""",
    )
    parser.add_argument(
        "--seeds",
        default=None,
        help="seeds, e.g. 0-9 or 0,3,5 (sets seed_everything and loop.seed; says when the DataModule fixes its own)",
    )
    parser.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="local",
        help="local: worker processes here; submitit-local: submitit jobs here; slurm: a SLURM job array",
    )
    parser.add_argument("--jobs", type=int, default=1, help="points running at once (workers, or array parallelism)")
    parser.add_argument(
        "--gpus",
        default="auto",
        help="local launcher: GPUs to share out over the workers: auto (the visible ones, when --jobs > 1),"
        " none, or e.g. 0,1,3",
    )
    parser.add_argument("--out", default=None, help="grid folder (default runs/<recipe>-grid/<timestamp>)")
    parser.add_argument(
        "--rerun-failed", action="store_true", help="run failed points again (from their last checkpoint)"
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=30.0,
        help="on SIGINT/SIGTERM, seconds the points get to checkpoint before they are killed (default 30)",
    )
    parser.add_argument("--detach", action="store_true", help="slurm: submit and return without waiting")
    parser.add_argument("--dry-run", action="store_true", help="print one `sclc fit` command per point and stop")
    for name, text in _SLURM_HELP.items():
        kwargs: dict[str, Any] = {"action": "append"} if name == "setup" else {"type": _TYPES.get(name, str)}
        parser.add_argument(f"--slurm.{name}", dest=f"slurm_{name}", default=None, help=text, **kwargs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sclc grid``; returns 0 when every point finished, 1 when one failed or
    is left to do, 128 + the signal when a signal stopped it, 2 on a bad argument."""
    from sclc_lightning.grid.api import run_grid

    parser = _parser()
    args, extra = _parse_arguments(parser, list(sys.argv[1:] if argv is None else argv))
    slurm = {name: getattr(args, f"slurm_{name}") for name in _SLURM_HELP if getattr(args, f"slurm_{name}")}
    try:
        seeds = parse_seeds(args.seeds) if args.seeds else None
        methods = method_arguments(args.method)
        if seeds:
            fixed = fixed_data_seed(args.config, args.set, extra)
            if fixed is not None:
                print(f"sclc grid: warning: {fixed}", file=sys.stderr)
        if args.dry_run:
            return _dry_run(args, seeds, extra, methods)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    try:
        table = run_grid(
            args.config,
            out=_out(args),
            sets=args.set,
            methods=methods or None,
            seeds=seeds,
            launcher=args.launcher,
            jobs=args.jobs,
            gpus=args.gpus,
            rerun_failed=args.rerun_failed,
            stop_timeout=args.stop_timeout,
            detach=args.detach,
            slurm=slurm,
            extra=extra,
        )
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    return table.exit_code


def _out(args: argparse.Namespace) -> Path:
    from sclc_lightning._files import check_local_folder

    if args.out:
        check_local_folder(args.out, "--out")
    stem = Path(args.config[0]).stem
    return Path(args.out or os.path.join("runs", f"{stem}-grid", time.strftime("%Y%m%d-%H%M%S")))


def method_arguments(texts: Sequence[str]) -> dict[str, str]:
    """The ``NAME=SPEC`` values of ``--method`` (of ``sclc grid`` and ``sclc bench run``), by name.

    Raises:
        ValueError: a value is not ``NAME=SPEC``, or a name is given twice.

    Examples:
        >>> method_arguments(['ot={"corrector": "optimal_transport"}'])
        {'ot': '{"corrector": "optimal_transport"}'}
    """
    methods: dict[str, str] = {}
    for text in texts:
        name, sep, spec = text.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise ValueError(f"`--method` must look like NAME=SPEC (SPEC: inline JSON or a YAML file), got {text!r}.")
        if name.strip() in methods:
            raise ValueError(f"`--method` names {name.strip()!r} twice.")
        methods[name.strip()] = spec
    return methods


def _dry_run(args: argparse.Namespace, seeds: list[int] | None, extra: list[str], methods: dict[str, str]) -> int:
    """Print one ``sclc fit`` command per point (and each method's layer) and stop."""
    from sclc_lightning.grid.api import method_layers

    out = _out(args)
    layers = method_layers(methods) if methods else {}
    for name, settings in layers.items():
        print(f"# {out / 'methods' / (name + '.yaml')}: loop: {json.dumps(settings)}")
    paths = {name: str(out / "methods" / f"{name}.yaml") for name in layers} or None
    for point in expand_grid(args.set, seeds, extra, paths):
        print(shlex.join(["sclc", *point.fit_args(args.config, out / point.name)]))
    return 0


def _parse_arguments(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The parsed options, and the arguments after ``--`` (passed on to every point's
    ``sclc fit``); a bad ``--jobs`` or a missing ``--config`` file is refused through ``parser``."""
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    for config in args.config:
        if not Path(config).is_file():
            parser.error(f"--config {config}: no such file")
    return args, extra


def fixed_data_seed(configs: Sequence[str], axes: Sequence[str], extra: Sequence[str]) -> str | None:
    r"""What to say when the recipe's DataModule has a fixed seed of its own (its data are then
    the same at every ``--seeds`` value), or ``None``: the seed the configs, the ``--set`` axes
    and the extra arguments give it (layered as ``sclc fit`` does), else its class's default.

    Examples:
        >>> import tempfile, os
        >>> with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        ...     _ = handle.write("data:\n  class_path: sclc_lightning.datasets.toy.GaussianDataModule\n"
        ...                      "  init_args:\n    seed: 3\n")
        >>> print(fixed_data_seed([handle.name], [], []))  # doctest: +ELLIPSIS
        the DataModule GaussianDataModule has a fixed seed of its own (data.init_args.seed: 3): ...
        >>> fixed_data_seed([handle.name], ["data.init_args.seed=1,2"], []) is None
        True
        >>> os.unlink(handle.name)
    """
    data: dict[str, Any] = {}
    for config in configs:
        recipe = yaml.safe_load(Path(config).read_text()) or {}
        section = recipe.get("data") if isinstance(recipe, dict) else None
        if isinstance(section, dict):
            if "class_path" in section and section.get("class_path") != data.get("class_path"):
                data = {}
            data.update({k: v for k, v in section.items() if k != "init_args"})
            data.setdefault("init_args", {}).update(section.get("init_args") or {})
    keys = ("data.init_args.seed", "data.seed")
    if any(axis.split("=", 1)[0].strip() in keys for axis in axes):
        return None  # a grid axis of its own
    seed: Any = (data.get("init_args") or {}).get("seed", inspect.Parameter.empty)
    for index, argument in enumerate(extra):
        name, equals, value = argument.partition("=")
        if name in (f"--{k}" for k in keys):
            seed = yaml.safe_load(value if equals else (extra[index + 1] if index + 1 < len(extra) else "null"))
    class_path = data.get("class_path")
    if seed is inspect.Parameter.empty and isinstance(class_path, str):
        module_name, _, name = class_path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), name)
            seed = inspect.signature(cls).parameters["seed"].default
        except (ImportError, AttributeError, KeyError, ValueError, TypeError):
            return None  # no `seed` argument to speak of
    if isinstance(seed, bool) or not isinstance(seed, int):
        return None
    name = str(class_path).rpartition(".")[2] or "DataModule"
    return (
        f"the DataModule {name} has a fixed seed of its own (data.init_args.seed: {seed}): its data are the same"
        " at every --seeds value, so the seeds vary the loop's draws only. Set data.init_args.seed: null to let"
        " the data follow the run's seed, or keep it on purpose."
    )
