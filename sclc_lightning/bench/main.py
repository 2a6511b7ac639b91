"""The ``sclc bench`` command: ``list``, ``run`` and ``compare``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from sclc_lightning.grid.main import _SLURM_HELP, _TYPES, TwoLineParser, method_arguments

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = TwoLineParser(
        prog="sclc bench",
        description="Score correction methods against the field's collapse settings (docs/bench.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=TwoLineParser)
    listing = commands.add_parser("list", help="the suites, their tasks and the built-in methods")
    listing.add_argument("--suite", default=None, help="only this suite's tasks")
    run = commands.add_parser(
        "run",
        help="run a bench and write DIR/bench.json, DIR/bench.html and DIR/figures",
        description="Run the reference arms (real data only, the uncorrected loop) and the methods on every task"
        " of the suite over the seeds, through the grid machinery; rerunning the same command with the same"
        " --out resumes (a finished point is never rerun).",
    )
    run.add_argument("--suite", default="quick", help="the suite (default quick)")
    run.add_argument(
        "--method",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="a method (repeatable): NAME and its loop settings, inline JSON or a YAML file; a corrector or"
        " policy may be a registered name or an import path package.module:Class",
    )
    run.add_argument("--builtin", action="store_true", help="add every built-in method that applies to each task")
    run.add_argument("--task", action="append", default=None, help="only this task of the suite (repeatable)")
    run.add_argument("--seeds", default="0-2", help="seeds, e.g. 0-4 (default 0-2)")
    run.add_argument("--out", required=True, help="the bench folder")
    run.add_argument("--recipes", default=None, help="the recipes folder (default: the repository's recipes/)")
    run.add_argument(
        "--config",
        action="append",
        default=None,
        metavar="LAYER",
        help="a YAML layer read after every task's recipe (repeatable): where the data are, the devices, a"
        " smaller size; part of every task's digest",
    )
    run.add_argument("--launcher", choices=("local", "submitit-local", "slurm"), default="local")
    run.add_argument("--jobs", type=int, default=1, help="points running at once")
    run.add_argument("--rerun-failed", action="store_true", help="run failed points again")
    run.add_argument("--no-figures", action="store_true", help="write bench.json only")
    for name, text in _SLURM_HELP.items():
        kwargs: dict[str, Any] = {"action": "append"} if name == "setup" else {"type": _TYPES.get(name, str)}
        run.add_argument(f"--slurm.{name}", dest=f"slurm_{name}", default=None, help=text, **kwargs)
    compare = commands.add_parser("compare", help="two cards, task by task, with paired intervals")
    compare.add_argument("first", help="a bench folder or its bench.json")
    compare.add_argument("second", help="a bench folder or its bench.json")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    return parser


def _list(suite: str | None) -> int:
    from sclc_lightning.bench.builtin import BUILTIN_METHODS, REFERENCES
    from sclc_lightning.bench.card import strict_json
    from sclc_lightning.bench.tasks import SUITES, TASKS

    if suite is not None and suite not in SUITES:
        print(f"sclc bench list: no suite {suite!r}; the suites are {sorted(SUITES)}.", file=sys.stderr)
        return 2
    for name, tasks in SUITES.items():
        if suite in (None, name):
            print(f"suite {name}:")
            for task in tasks:
                entry = TASKS[task]
                print(f"  {task}: {entry.metric} at generation {entry.generation} ({entry.direction} is better)")
                print(f"      {entry.claim}")
                if entry.unfit:
                    print(f"      skips at its size: {', '.join(entry.unfit)}")
    print(f"reference arms: {', '.join(REFERENCES)}")
    print("built-in methods (--builtin):")
    for name, method in BUILTIN_METHODS.items():
        needs = f"; needs {', '.join(method.needs)}" if method.needs else ""
        part = f"; task-specific: {method.part}" if method.part else ""
        print(f"  {name}: {json.dumps(strict_json(method.settings))}{needs}{part}")
    return 0


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from sclc_lightning.bench.runner import run

    try:
        card = run(
            args.suite,
            method_arguments(args.method),
            args.seeds,
            out=args.out,
            builtin=args.builtin,
            tasks=args.task,
            recipes=args.recipes,
            layers=args.config,
            launcher=args.launcher,
            jobs=args.jobs,
            rerun_failed=args.rerun_failed,
            slurm={n: getattr(args, f"slurm_{n}") for n in _SLURM_HELP if getattr(args, f"slurm_{n}") is not None},
            figures=not args.no_figures,
        )
    except (ValueError, TypeError, FileNotFoundError, NotImplementedError) as err:
        parser.error(str(err))
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return 1
    _summary(card)
    for task, entry in card["tasks"].items():
        for method, arm in entry["methods"].items():
            if arm["status"] == "failed":
                print(f"  {task} / {method} failed: {arm['reason']}", file=sys.stderr)
    page = "" if args.no_figures else f", page in {args.out}/bench.html"
    print(f"sclc bench: card in {args.out}/bench.json{page}")
    failed = [(t, m) for t, e in card["tasks"].items() for m, a in e["methods"].items() if a["status"] == "failed"]
    return 1 if failed else 0


def _summary(card: dict) -> None:  # type: ignore[type-arg]
    for name, entry in card["aggregate"].items():
        if entry["score"] is None:
            print(f"  {name}: no score ({', '.join(entry['unscored'])} unscored)")
        else:
            low, high = entry["score_interval"]
            print(f"  {name}: {entry['score']:.3f} [{low:.3f}, {high:.3f}] over {len(entry['tasks'])} task(s)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sclc bench``."""
    parser = _parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command == "list":
        return _list(args.suite)
    if args.command == "run":
        if args.jobs < 1:
            parser.error(f"--jobs must be >= 1, got {args.jobs}")
        return _run(args, parser)
    from sclc_lightning.bench.card import read_card
    from sclc_lightning.bench.compare import compare, compare_text

    try:
        result = compare(read_card(args.first), read_card(args.second))
    except ValueError as err:
        parser.error(str(err))
    print(json.dumps(result, indent=1, sort_keys=True) if args.json else compare_text(result))
    return 0
