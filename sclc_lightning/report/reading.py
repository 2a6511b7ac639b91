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


def _read_series(path: Path) -> dict[str, dict[int, float]] | None:
    """``metrics.csv`` as ``{metric: {generation: value}}``, read row by row (a file of a million
    generations is never held as rows; a cell may be of any size); ``None`` for a Lightning
    ``CSVLogger`` file (a ``step`` column), not :class:`~sclc_lightning.callbacks.GenerationCSV`'s.

    Raises:
        ReportError: the file is not what ``GenerationCSV`` writes, naming the file, the line and
            what is wrong (:func:`_check_header`, :func:`_check_row`).
    """
    try:
        with _any_field_size(), open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader, [])
                if "step" in header:
                    return None
                _check_header(path, header)
                return _read_rows(path, header, reader)
            except csv.Error as err:
                raise ReportError(f"{path}, line {reader.line_num}: not a CSV file ({err}).") from None
    except UnicodeDecodeError:
        raise ReportError(
            f"{path}, line {_first_undecodable_line(path)}: not text (bytes that are not UTF-8); a damaged"
            " metrics.csv. Restore it or move the run out of the folders given."
        ) from None


def _read_rows(path: Path, header: list[str], reader: Any) -> dict[str, dict[int, float]]:
    """The rows after ``header``, each checked (:func:`_check_row`), by metric."""
    at = header.index("generation")
    series: dict[str, dict[int, float]] = {"generation": {}}
    columns = [(index, name, series.setdefault(name, {})) for index, name in enumerate(header) if index != at]
    previous: int | None = None
    for row in reader:
        if not row:  # a blank line holds no generation
            continue
        previous = _check_row(path, reader.line_num, header, row, previous)
        for index, name, values in columns:
            value = _cell(path, reader.line_num, name, row[index])
            if value is not None:
                values[previous] = value
        series["generation"][previous] = float(previous)
    return series


def _check_header(path: Path, header: list[str]) -> None:
    """Refuse a header without ``generation`` or with a column twice.

    Raises:
        ReportError: naming the file and what is wrong.
    """
    if not header:
        raise ReportError(
            f"{path}, line 1: the file is empty; GenerationCSV writes a header and one row per generation."
        )
    if "generation" not in header:
        raise ReportError(
            f"{path}, line 1: no `generation` column (the columns: {_shown(', '.join(header))}); a run's"
            " metrics.csv (GenerationCSV) has one, and one row per generation."
        )
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise ReportError(f"{path}, line 1: the column(s) {twice} appear more than once; which to read is unknown.")


def _check_row(path: Path, line: int, header: list[str], row: list[str], previous: int | None) -> int:
    """The generation of ``row``, which must have a cell per column and be the generation after
    ``previous`` (the first: 0 or 1): the loop writes one row per completed generation, in order.

    Raises:
        ReportError: naming the file, the line and what is wrong.
    """
    where = f"{path}, line {line}"
    if len(row) != len(header):
        raise ReportError(f"{where}: {len(row)} cells, but the header has {len(header)} columns; a damaged row.")
    cell = row[header.index("generation")]
    try:
        number = float(cell)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number.is_integer() and number >= 0):
        raise ReportError(f"{where}: the generation {_shown(cell)!r} is not a whole number >= 0.")
    generation = int(number)
    expected = (0, 1) if previous is None else (previous + 1,)
    if generation not in expected:
        after = "in the first row" if previous is None else f"after generation {previous}"
        raise ReportError(
            f"{where}: generation {generation} {after}, where {' or '.join(map(str, expected))} is expected;"
            " the loop writes one row per completed generation, in order (a row repeated, lost or edited?)."
        )
    return generation


def _cell(path: Path, line: int, column: str, cell: str) -> float | None:
    """A metric's cell: a number, or ``None`` when empty (not logged that generation) or NaN.

    Raises:
        ReportError: the cell is neither, naming the file, the line and the column.
    """
    if cell == "":
        return None
    try:
        value = float(cell)
    except ValueError:
        raise ReportError(
            f"{path}, line {line}: the {_shown(column)!r} cell {_shown(cell)!r} is not a number (a metric's"
            " cell holds a number, or nothing in a generation that did not log it)."
        ) from None
    return None if math.isnan(value) else value


def _shown(text: str) -> str:
    """``text`` cut to a length a message can show."""
    return text if len(text) <= 60 else text[:57] + "..."


def _first_undecodable_line(path: Path) -> int:
    """The first line of ``path`` that is not UTF-8 (a character's bytes never hold a newline)."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


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
    series = _read_series(metrics)
    if series is None:  # a Lightning logger's file (one row per logging step)
        return None
    config = _read_config(config_path) if config_path.exists() else {}
    recorded = None if manifest is None else _recorded(manifest)
    run = Run.from_series(metrics.parent, config, series, recorded)
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
        ReportError: a run's ``metrics.csv`` is damaged (not text, rows of other lengths than
            its header, no ``generation`` column, generations repeated, missing, out of order or
            not whole numbers, a metric's cell neither a number nor empty: the message names the
            file and the line), its ``config.yaml`` is not a mapping of settings, or its model
            declares a theory that is not registered.
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
