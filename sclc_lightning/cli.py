"""The ``sclc`` command: one entry point for every subcommand.

- ``sclc fit --config recipes/<name>.yaml [--key value ...]``: a LightningCLI run, see
  :mod:`sclc_lightning.lightning_cli` (also ``validate`` and ``test``).
- ``sclc grid --config R.yaml --set KEY=V1,V2 ... --seeds 0-9 [--jobs N]``: the cartesian grid,
  see :mod:`sclc_lightning.grid`.
- ``sclc report RUNS --out DIR``: figures and an HTML page, see :mod:`sclc_lightning.report`.
- ``sclc bench list|run|compare``: scoring correction methods, see :mod:`sclc_lightning.bench`.
- ``sclc correctors``: the registered correctors; ``sclc modes``: the registered mixing policies.
- ``sclc --version``.

Subcommands are imported when used, so ``sclc --help`` stays fast. The working directory is on
the import path, so a ``class_path`` may name a module there (``my_model.MyVAE``); other folders
go in ``PYTHONPATH``. Models written for ``pytorch_lightning`` run with that package's Trainer
and CLI (:func:`~sclc_lightning.lightning_cli.model_namespace`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

__all__ = ["main"]

_USAGE = """usage: sclc {fit,grid,report,bench,validate,test,correctors,modes} ... | sclc --version

Self-consuming and self-correcting generative training loops for PyTorch Lightning.

commands:
  fit          train a model in a self-consuming loop: sclc fit --config recipes/<name>.yaml
  grid         run a recipe over a grid: sclc grid --config R.yaml --set loop.synthetic_fraction=0.1,0.5 --seeds 0-9
  report       figures and an HTML page of runs: sclc report runs/grid-folder --out report/
  bench        score correction methods: sclc bench run --suite quick --method NAME=SPEC --seeds 0-2 --out DIR
  validate     validate a model (LightningCLI)
  test         test a model (LightningCLI)
  correctors   list the registered correctors
  modes        list the registered mixing policies (loop.mode)

Run `sclc fit --help` for every option of a run. A bad value is reported in a line or two;
add --debug (or set SCLC_DEBUG=1) for the traceback.
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"sclc-lightning {version('sclc-lightning')}"
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "sclc-lightning 0.0.0+unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sclc`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    text = _information(args[0] if args else None)
    if text is not None:
        print(text)
        return 0
    if os.getcwd() not in sys.path:
        # As `python -m` does: `class_path: my_module.MyModel` finds my_module.py in the working
        # directory (appended, so that nothing installed is shadowed); PYTHONPATH adds others.
        sys.path.append(os.getcwd())
    if args[0] in ("fit", "validate", "test"):
        return _lightning_command(args, from_sys_argv=argv is None)
    if args[0] == "grid":
        from sclc_lightning.grid import main as grid_main

        return grid_main(args[1:])
    if args[0] == "bench":
        from sclc_lightning.bench.main import main as bench_main

        return bench_main(args[1:])
    if args[0] == "report":
        from sclc_lightning.report import main as report_main

        return report_main(args[1:])
    print(f"sclc: unknown command {args[0]!r}\n\n{_USAGE}", file=sys.stderr)
    return 2


def _information(command: str | None) -> str | None:
    """The text that the commands which only print (help, ``--version``, ``correctors``,
    ``modes``) print; ``None`` for any other command."""
    if command is None or command in ("-h", "--help"):
        return _USAGE
    if command == "--version":
        return _version()
    if command == "correctors":
        from sclc_lightning.correctors import available_correctors

        return "\n".join(available_correctors())
    if command == "modes":
        from sclc_lightning.mixing.policies import available_mixing_policies

        return "\n".join(available_mixing_policies())
    return None


def _lightning_command(args: list[str], *, from_sys_argv: bool) -> int:
    """Run ``sclc fit``, ``validate`` or ``test`` through LightningCLI: 0 when it finished, 2 on
    a bad argument (reported in a line or two unless ``--debug``), the interruption exit code
    when a signal stopped it. ``from_sys_argv``: the arguments came from ``sys.argv``, which
    LightningCLI then reads itself."""
    from sclc_lightning.lightning_cli import CLIError, run_lightning_cli
    from sclc_lightning.loop.interruption import EXIT_INTERRUPTED, RunInterrupted

    debug = "--debug" in args or os.environ.get("SCLC_DEBUG", "") not in ("", "0")
    command: list[str] | None = [a for a in args if a != "--debug"]
    if from_sys_argv:  # LightningCLI reads sys.argv itself
        sys.argv = [a for a in sys.argv if a != "--debug"]
        command = None
    try:
        run_lightning_cli(command, debug=debug)
    except CLIError as err:
        print(f"sclc {args[0]}: error: {err}", file=sys.stderr)
        print(f"(`sclc {args[0]} --help` lists the options; --debug shows the traceback)", file=sys.stderr)
        return 2
    except RunInterrupted as stop:
        resume = f"; resume with --ckpt_path {stop.checkpoint}" if stop.checkpoint and not stop.requeued else ""
        print(f"sclc {args[0]}: {stop}{resume}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
