"""The checkpoints a run directory holds, and the one to resume from: read by ``sclc fit
--ckpt_path last`` and by the grid's workers (a reader of the run directory, so it lives with the
store; torch is imported only when a checkpoint is read, so that the grid's own process stays
light)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sclc_lightning._files import read_regular

__all__ = ["latest_checkpoint"]


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a point's fit resumes from: among the ``.ckpt`` files under ``run_dir`` (any
    logger version, or the ``hpc_ckpt_<n>.ckpt`` an interrupted fit saved), only those holding
    the loop's state of the run whose synthetic data is in ``run_dir/synthetic`` (its manifest's
    run id; any run's when the manifest cannot be read, so that the resume says what is wrong),
    the most advanced (global step, then epoch); never a file chosen by its name or
    modification time. A file that is not such a checkpoint (planted, of another run, unreadable)
    is skipped, with a line on stderr. ``None`` when there is none.
    """
    if not run_dir.is_dir():
        return None
    try:
        run_id = json.loads(read_regular(run_dir / "synthetic" / "manifest.json")).get("run_id")
    except (OSError, ValueError, AttributeError):
        run_id = None  # unreadable or gone: any checkpoint of the loop, whose resume will say what is wrong
    found = [
        p for p in sorted(run_dir.rglob("*.ckpt")) if p.is_file() and "synthetic" not in p.relative_to(run_dir).parts
    ]
    best: tuple[tuple[int, int], Path] | None = None
    for path in found:
        progress = _loop_checkpoint(path, run_id)
        if progress is None:
            whose = f"of run {run_id}" if run_id else "of the loop"
            print(f"sclc: {path} is not a checkpoint {whose}; not resuming from it", file=sys.stderr)
        elif best is None or progress > best[0]:
            best = (progress, path)
    return None if best is None else best[1]


def _loop_checkpoint(path: Path, run_id: str | None) -> tuple[int, int] | None:
    """``(global_step, epoch)`` of ``path`` when it holds the loop's state of run ``run_id`` (of
    any run when ``None``), read with torch's weights-only loader, memory-mapped (nothing in it
    runs); else ``None``."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        state = checkpoint["callbacks"]["SelfConsumingLoop"]
        if not isinstance(state, dict) or (run_id is not None and state.get("run_id") != run_id):
            return None
        return int(checkpoint.get("global_step", -1)), int(checkpoint.get("epoch", -1))
    except Exception:  # not a checkpoint, not the loop's, or refused by the weights-only loader
        return None
