"""What a grid knows about its points, on disk so that a rerun (or another machine) can read it.

- ``<run_dir>/point.json``: written by whoever runs the point (a local worker, a submitit job):
  its status (``running``, ``ok``, ``failed``, ``interrupted``), times, error, host, pid, job id
  and the checkpoint it resumed from.
- ``<out>/grid.json``: the grid's definition (recipe and its digest, axes, seeds, extra
  arguments); a rerun into the same ``--out`` must define the same grid.
- ``<out>/runs.csv``: one row per point with its values, status and final metrics, rewritten
  after every point ends.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sclc_lightning._files import atomic_path, atomic_write, read_regular, sha256_file
from sclc_lightning.grid.points import GridPoint

__all__ = [
    "GridError",
    "GridSpec",
    "PointResult",
    "read_point",
    "write_point",
    "write_table",
]

STATUSES = ("pending", "running", "ok", "failed", "interrupted")


@dataclass(frozen=True)
class PointResult:
    """How a point's run ended."""

    name: str
    status: str
    seconds: float = 0.0
    error: str = ""
    gpus: str = ""
    job_id: str = ""


def read_point(run_dir: Path) -> dict[str, Any]:
    """The point's ``point.json`` (empty when it never started or the file is unreadable)."""
    try:
        found = json.loads((run_dir / "point.json").read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) and found.get("status") in STATUSES else {}


def write_point(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Update the point's ``point.json`` with ``fields`` (and who wrote it, when)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    state = read_point(run_dir)
    state.update(fields, host=socket.gethostname(), pid=os.getpid(), updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    atomic_write(run_dir / "point.json", json.dumps(state, indent=1))
    return state


class GridError(ValueError):
    """A grid's ``--out`` folder holds what this grid cannot use (another grid, an unreadable or
    malformed ``grid.json``); the message names the file and what to do."""


@dataclass(frozen=True)
class GridSpec:
    """A grid's definition, kept in ``<out>/grid.json``."""

    config: str | list[str]
    config_sha256: str | list[str]
    sets: list[str]
    seeds: list[int] | None
    extra: list[str]
    methods: dict[str, Any] | None = None

    @classmethod
    def of(
        cls,
        configs: Sequence[str],
        sets: Sequence[str],
        seeds: Sequence[int] | None,
        extra: Sequence[str],
        methods: Mapping[str, Any] | None = None,
    ) -> GridSpec:
        """The definition of a grid over the recipe files ``configs`` (one: kept as a string, as
        grids of one file have always been recorded), with its methods' settings by name."""
        paths = [str(Path(c).resolve()) for c in configs]
        digests = [sha256_file(c) for c in configs]
        config: str | list[str] = paths[0] if len(paths) == 1 else paths
        digest: str | list[str] = digests[0] if len(digests) == 1 else digests
        from sclc_lightning._callables import recorded_settings

        recorded = json.loads(json.dumps(recorded_settings(dict(methods)))) if methods else None
        return cls(config, digest, list(sets), None if seeds is None else list(seeds), list(extra), recorded)

    def differences(self, other: Mapping[str, Any]) -> list[str]:
        """What differs from the definition ``other`` (a ``grid.json``)."""
        mine = asdict(self)
        return [f"{key}: {other.get(key)!r} before, {mine[key]!r} now" for key in mine if other.get(key) != mine[key]]

    def save_or_check(self, out: Path) -> None:
        """Record the grid in ``out``, or check that ``out`` holds this same grid.

        Raises:
            GridError: ``out`` holds another grid, or a ``grid.json`` that cannot be read.
        """
        path = out / "grid.json"
        if path.exists():
            try:
                old = json.loads(read_regular(path))
            except (OSError, ValueError) as err:
                raise GridError(f"{path} cannot be read ({err}); use another --out.") from None
            if not isinstance(old, dict):
                raise GridError(
                    f"{path} holds a JSON {type(old).__name__}, not a grid's definition (an object); use another --out."
                )
            changes = self.differences(old)
            if changes:
                raise GridError(
                    f"{out} holds another grid ({'; '.join(changes)}): rerun it with the same recipe and"
                    " arguments, or use another --out."
                )
            return
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(asdict(self), indent=1))


def _final_metrics(run_dir: Path) -> dict[str, str]:
    path = run_dir / "metrics.csv"
    if not path.exists():
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {f"final_{k}": v for k, v in rows[-1].items()} if rows else {}


def write_table(out: Path, points: Sequence[GridPoint], results: Mapping[str, PointResult]) -> Path:
    """Write ``<out>/runs.csv``: every point, with its result when it has one (else what its
    ``point.json`` says, else ``pending``)."""
    rows = []
    for point in points:
        run_dir = out / point.name
        result = results.get(point.name)
        if result is None:
            saved = read_point(run_dir)
            result = PointResult(
                point.name,
                saved.get("status", "pending"),
                float(saved.get("seconds", 0.0)),
                str(saved.get("error", "")),
                str(saved.get("gpus", "")),
                str(saved.get("job_id", "")),
            )
        row: dict[str, Any] = {
            "name": point.name,
            "status": result.status,
            "seconds": f"{result.seconds:.2f}",
            "run_dir": str(run_dir),
        }
        if result.gpus:
            row["gpus"] = result.gpus
        if result.job_id:
            row["job_id"] = result.job_id
        if point.method is not None:
            row["method"] = point.method
        row.update(dict(point.values))
        row["seed"] = "" if point.seed is None else str(point.seed)
        row.update(_final_metrics(run_dir))
        row["error"] = result.error
        rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    path = out / "runs.csv"
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path
