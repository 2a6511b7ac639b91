"""``summary.csv``: per group and metric, the numbers a results table quotes (the last
generation's value and the second half's average, mean and standard deviation over seeds), in
cells a spreadsheet shows and never evaluates."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from sclc_lightning._files import atomic_path
from sclc_lightning.report.runs import Run

__all__ = ["mean_se", "mean_std", "spreadsheet_safe", "write_summary"]

# What starts a spreadsheet formula (OWASP, CSV injection); such text cells get a leading "'".
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_COLUMNS = ["last_generation", "last_mean", "last_std", "late_mean", "late_std"]


def mean_std(values: list[float]) -> tuple[float, float]:
    """The mean and the (population) standard deviation of ``values``.

    Examples:
        >>> mean_std([1.0, 3.0])
        (2.0, 1.0)
    """
    mean = sum(values) / len(values)
    return mean, (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """The mean of ``values`` and its standard error (sample standard deviation over √n; NaN for
    one value): what the result scripts report for a quantity measured once per seed.

    Examples:
        >>> mean_se([1.0, 3.0])
        (2.0, 1.0)
    """
    values = list(values)
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan


def spreadsheet_safe(text: str) -> str:
    """``text`` as a CSV cell that a spreadsheet shows and never evaluates: text that would start
    a formula (``=``, ``+``, ``-``, ``@``, tab, carriage return) gets a leading ``'``; numbers
    (``-0.5``, ``+3``) stay as they are.

    Examples:
        >>> for cell in ('=HYPERLINK("http://x", "click")', "-0.5", "fid"):
        ...     print(spreadsheet_safe(cell))
        '=HYPERLINK("http://x", "click")
        -0.5
        fid
    """
    if not text.startswith(_FORMULA_STARTS):
        return text
    try:
        float(text)
    except ValueError:
        return "'" + text
    return text


def _row(name: str, metric: str, runs: list[Run]) -> list[object] | None:
    """The summary row of ``metric`` in the group ``name`` (``None`` when no run logged it)."""
    series = [s for s in (r.series(metric) for r in runs) if s]
    if not series:
        return None
    last = min(max(s) for s in series)  # the last generation every run reached
    late = [sum(v for g, v in s.items() if last / 2 < g <= last) for s in series]
    counts = [sum(1 for g in s if last / 2 < g <= last) for s in series]
    late_means = [total / count for total, count in zip(late, counts) if count]
    last_mean, last_std = mean_std([s[last] for s in series if last in s])
    late_mean, late_std = mean_std(late_means)
    numbers = (f"{v:.6g}" for v in (last_mean, last_std, late_mean, late_std))
    return [spreadsheet_safe(name), spreadsheet_safe(metric), len(series), last, *numbers]


def write_summary(groups: dict[str, list[Run]], metrics: Sequence[str], path: Path) -> None:
    """``summary.csv``: for every group and metric, over the group's runs (seeds), the mean and
    standard deviation of the metric at the last generation and of its average over the second
    half of the generations (``t > T/2``), the numbers a results table quotes.

    Examples:
        >>> import tempfile
        >>> runs = [Run(Path(str(s)), {}, [{"generation": float(g), "w2": float(g + s)} for g in range(5)])
        ...         for s in (0, 2)]
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_summary({"arm": runs}, ["w2"], Path(folder) / "s.csv")
        ...     print(open(Path(folder) / "s.csv").read().splitlines()[1])
        arm,w2,2,4,5,1,4.5,1
    """
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["group", "metric", "runs", *_COLUMNS])
        for name, runs in sorted(groups.items()):
            rows = (_row(name, metric, runs) for metric in metrics)
            writer.writerows(row for row in rows if row is not None)
