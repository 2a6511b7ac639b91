"""A lock on a run directory for the life of a fit, so that two fits never write one directory.

The lock is an operating-system file lock (``filelock``, ``flock`` on Linux) on
``<output_dir>/.sclc.lock``: the system releases it when its process ends, even by ``kill -9``.
Beside it, ``.sclc.lock.json`` names the holder (host, pid, run id, since when) for the message
a refused fit gives. On a network filesystem that does not release locks of a crashed host, the
message says how to remove a stale lock by hand.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from sclc_lightning._files import atomic_write, read_regular

__all__ = ["RunDirectoryLocked", "RunLock"]

LOCK_FILE = ".sclc.lock"
HOLDER_FILE = ".sclc.lock.json"


class RunDirectoryLocked(RuntimeError):
    """Another fit holds the run directory; the message names it."""


class RunLock:
    """Holds ``<root>/.sclc.lock`` from :meth:`acquire` to :meth:`release`.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> first = RunLock(root).acquire("run-a")
        >>> try:
        ...     RunLock(root).acquire("run-b")
        ... except RunDirectoryLocked as err:
        ...     "run-a" in str(err)
        True
        >>> first.release()
    """

    def __init__(self, root: str | os.PathLike[str], owner: str = "fit") -> None:
        self.root = Path(root)
        self.owner = owner
        self._lock = FileLock(str(self.root / LOCK_FILE), timeout=0)

    @property
    def held(self) -> bool:
        return bool(self._lock.is_locked)

    def holder(self) -> dict[str, Any]:
        """What the holder wrote about itself (empty when unknown)."""
        try:
            holder = json.loads(read_regular(self.root / HOLDER_FILE))  # never blocks on a FIFO
        except (OSError, ValueError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def acquire(self, run_id: str | None) -> RunLock:
        """Take the lock, or refuse naming its holder.

        Raises:
            RunDirectoryLocked: another process holds it.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            holder = self.holder()
            who = ", ".join(f"{k} {holder[k]}" for k in ("host", "pid", "run_id", "since") if k in holder) or "unknown"
            other = "`output_dir`" if self.owner == "fit" else "folder"
            raise RunDirectoryLocked(
                f"{self.root} is in use by another {self.owner} ({who}). Wait for it to end, or use another"
                f" {other}. If that process no longer runs (a lock left behind on a network"
                f" filesystem), delete {self.root / LOCK_FILE} and start again."
            ) from None
        holder = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "run_id": run_id,
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write(self.root / HOLDER_FILE, json.dumps(holder))
        return self

    def update(self, run_id: str) -> None:
        """Name the run once its id is known."""
        holder = self.holder()
        if self.held and holder.get("pid") == os.getpid():
            holder["run_id"] = run_id
            atomic_write(self.root / HOLDER_FILE, json.dumps(holder))

    def release(self) -> None:
        """Give the lock back (no-op when not held)."""
        if self.held:
            (self.root / HOLDER_FILE).unlink(missing_ok=True)
            self._lock.release(force=True)
