"""``sclc report RUN_OR_GRID_DIR ... --out DIR``: paper-style figures of a loop's metrics.

The command: its arguments, and one line naming the problem when the folders or ``--out`` cannot
be used."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence

import yaml

from sclc_lightning.report.page import write_report

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sclc report``: 0 on success; 2, with one line on stderr naming the problem,
    when the folders or ``--out`` cannot be used (``--debug``: the traceback instead).

    Examples:
        >>> main(["/no/such/folder", "--out", "/tmp/unused"])
        2
    """
    parser = argparse.ArgumentParser(prog="sclc report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="run or grid folders")
    parser.add_argument("--out", required=True, help="folder for the PNG figures and report.html")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    try:
        page = write_report(args.folders, args.out)
    except (OSError, ValueError, csv.Error, yaml.YAMLError) as err:  # ReportError is a ValueError
        if args.debug:
            raise
        print(f"sclc report: {err}", file=sys.stderr)
        return 2
    print(f"sclc report: wrote {page}")
    return 0
