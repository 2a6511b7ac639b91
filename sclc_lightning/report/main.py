"""``sclc report RUN_OR_GRID_DIR ... --out DIR``: paper-style figures of a loop's metrics.

The command: its arguments, one line naming the problem when the folders or ``--out`` cannot be
used, and one line for each thing it went on without (a :class:`ReportWarning`, printed once)."""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import PurePosixPath
from typing import Any

import yaml

from sclc_lightning.report.page import write_report
from sclc_lightning.report.runs import ReportWarning
from sclc_lightning.store.manifest import RunDirectoryError
from sclc_lightning.store.remote import RemoteRunDirectory, is_url, local_cache

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sclc report``: 0 on success; 2, with one line on stderr naming the problem,
    when the folders or ``--out`` cannot be used (``--debug``: the traceback instead). What the
    report goes on without is said on stderr, once each: ``sclc report: warning: ...``.

    Examples:
        >>> main(["/no/such/folder", "--out", "/tmp/unused"])
        2
    """
    parser = argparse.ArgumentParser(prog="sclc report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="run or grid folders, or runs on object storage (s3://bucket/run)")
    parser.add_argument("--out", required=True, help="folder for the PNG figures and report.html")
    for scale in ("log", "linear"):
        parser.add_argument(
            f"--{scale}-scale",
            action="append",
            default=[],
            metavar="METRIC",
            help=f"draw METRIC on a {'logarithmic' if scale == 'log' else 'linear'} axis (repeat the option for"
            " several); by default a metric spanning more than three decades of positive values gets a"
            " logarithmic axis, the others a linear one",
        )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    try:
        scales = _scales(args.log_scale, args.linear_scale)
        with _notices():
            page = write_report([_local(folder) for folder in args.folders], args.out, scales)
    except (OSError, ValueError, RunDirectoryError, csv.Error, yaml.YAMLError) as err:  # ReportError: a ValueError
        if args.debug:
            raise
        print(f"sclc report: {err}", file=sys.stderr)
        return 2
    print(f"sclc report: wrote {page}")
    return 0


def _scales(log: Sequence[str], linear: Sequence[str]) -> dict[str, str]:
    """``{metric: "log" | "linear"}`` from ``--log-scale`` and ``--linear-scale``; a metric
    given both is refused.

    Examples:
        >>> _scales(["kl", "ppl"], ["w2"])
        {'kl': 'log', 'ppl': 'log', 'w2': 'linear'}
    """
    scales: dict[str, str] = {}
    for scale, given in (("log", log), ("linear", linear)):
        for metric in given:
            if not metric.strip():
                raise ValueError(f"--{scale}-scale needs a metric's name, got {metric!r}.")
            if scales.get(metric, scale) != scale:
                raise ValueError(f"metric {metric!r} is given both --log-scale and --linear-scale; choose one.")
            scales[metric] = scale
    return scales


def _local(folder: str) -> str:
    """``folder``, or for a run on object storage (``s3://bucket/run``) the local copy of its
    latest snapshot (verified as it is downloaded), named like the run."""
    if not is_url(folder):
        return folder
    name = PurePosixPath(folder.rstrip("/")).name or "run"
    remote = RemoteRunDirectory(folder, local_cache(folder.rstrip("/"), "read") / name)
    snapshot = remote.read()
    if snapshot is None:
        raise ValueError(
            f"{folder} holds no snapshot of a run: no such bucket or path, or nothing published there yet"
            f" (sclc fit --run_dir {folder} publishes them)."
        )
    print(f"sclc report: {folder}: snapshot {snapshot.number} read into {remote.local}", file=sys.stderr)
    return str(remote.local)


@contextlib.contextmanager
def _notices() -> Iterator[None]:
    """Print each :class:`ReportWarning` once, as one line on stderr, not as a Python warning
    (``file.py:123: UserWarning: ...``); other warnings are shown as usual."""
    seen: set[str] = set()
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if not issubclass(category, ReportWarning):
                shown(message, category, *args, **kwargs)
            elif str(message) not in seen:
                seen.add(str(message))
                print(f"sclc report: warning: {message}", file=sys.stderr)

        warnings.simplefilter("always", ReportWarning)  # every one reaches `show`, which says each once
        warnings.showwarning = show
        yield
