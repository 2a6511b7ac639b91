"""Finding and reading run directories: every ``metrics.csv`` under the folders ``sclc report``
is given that belongs to a run (beside its ``config.yaml`` or its synthetic data's manifest), read
as a stream, with the loop's settings its manifest records."""

from __future__ import annotations

import contextlib
import csv
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from sclc_lightning.report.runs import ReportError, Run
from sclc_lightning.report.theory import derive_series

__all__ = ["find_runs"]


def _manifest_of(folder: Path) -> Path | None:
    """The manifest of the run whose metrics are in ``folder``: ``synthetic/manifest.json``, or the
    one manifest under the logger's folders (``logs/version_0/synthetic/manifest.json``)."""
    own = folder / "synthetic" / "manifest.json"
    if own.is_file():
        return own
    found = sorted(folder.glob("*/*/synthetic/manifest.json")) + sorted(folder.glob("*/synthetic/manifest.json"))
    return found[0] if len(found) == 1 else None


def _recorded(manifest: Path) -> dict[str, Any] | None:
    """The loop settings a manifest records (``None`` when it cannot be read)."""
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    config = data.get("config") if isinstance(data, dict) else None
    return dict(config) if isinstance(config, dict) and "synthetic_fraction" in config else None


def _step_wise(path: Path) -> bool:
    """Whether ``path`` is a Lightning ``CSVLogger`` file (a ``step`` column) rather than
    :class:`~sclc_lightning.callbacks.generation_csv.GenerationCSV`'s one row per generation."""
    with open(path, newline="") as handle:
        header = next(csv.reader(handle), [])
    return "step" in header


def _read_series(path: Path) -> dict[str, dict[int, float]]:
    """``metrics.csv`` as ``{metric: {generation: value}}``, read row by row (a file of a million
    generations is never held as rows); cells that are not numbers are left out, and a cell may be
    of any size."""
    series: dict[str, dict[int, float]] = {}
    with _any_field_size(), open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if "generation" not in header:
            return {}
        at = header.index("generation")
        columns = [(index, series.setdefault(name, {})) for index, name in enumerate(header) if index != at]
        for row in reader:
            generation = _number(row, at)
            if generation is None or not math.isfinite(generation):
                continue
            for index, values in columns:
                value = _number(row, index)
                if value is not None and not math.isnan(value):
                    values[int(generation)] = value
            series.setdefault("generation", {})[int(generation)] = float(int(generation))
    return series


def _number(row: list[str], index: int) -> float | None:
    """The cell ``index`` of ``row`` as a number (``None``: missing or not a number)."""
    try:
        return float(row[index])
    except (IndexError, ValueError):
        return None


@contextlib.contextmanager
def _any_field_size() -> Iterator[None]:
    """Lift the csv module's 128 kB limit on one cell while reading."""
    before = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        yield
    finally:
        csv.field_size_limit(before)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ReportError(f"{path} is not valid YAML{where} ({getattr(err, 'problem', None) or err}).") from None
    if config is not None and not isinstance(config, dict):
        raise ReportError(f"{path} holds a {type(config).__name__}, not a mapping of settings.")
    return config or {}


def _read_run(metrics: Path) -> Run | None:
    """The run whose ``metrics.csv`` is ``metrics``, or ``None`` when it is not a run's."""
    config_path = metrics.parent / "config.yaml"
    manifest = _manifest_of(metrics.parent)
    if not config_path.exists() and manifest is None:
        return None
    if _step_wise(metrics):  # a Lightning logger's file (one row per logging step)
        return None
    config = _read_config(config_path) if config_path.exists() else {}
    recorded = None if manifest is None else _recorded(manifest)
    run = Run.from_series(metrics.parent, config, _read_series(metrics), recorded)
    return run if run.series("generation") else None


def find_runs(folders: Sequence[str | Path]) -> list[Run]:
    """Every run directory under ``folders``: a ``metrics.csv`` beside a ``config.yaml`` (``sclc fit``)
    or the run's synthetic data manifest (the loop used from Python with ``GenerationCSV``:
    ``synthetic/manifest.json``, or the one under the logger's folder); Lightning's own step-wise
    ``logs/*/metrics.csv`` are not runs. Each run also has the series its model's theory derives
    from the logged ones (:meth:`~sclc_lightning.report.theory.Theory.derive`: the Gaussian's
    ``log_sigma_ratio``).

    Raises:
        FileNotFoundError: a folder does not exist, or holds no run.
        ReportError: a run's ``config.yaml`` is not a mapping of settings, or its model declares
            a theory that is not registered.
    """
    runs: list[Run] = []
    for folder in folders:
        root = Path(folder)
        if not root.exists():
            raise FileNotFoundError(f"No such run or grid folder: {str(root)!r}.")
        found = (_read_run(metrics) for metrics in sorted(root.rglob("metrics.csv")))
        runs.extend(run for run in found if run is not None)
    if not runs:
        raise FileNotFoundError(f"No run with a metrics.csv under {[str(f) for f in folders]}.")
    derive_series(runs)
    return runs
