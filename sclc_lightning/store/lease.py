"""One writer at a time for a run directory on object storage: a lease object instead of ``flock``.

Object stores have no locks, but they have conditional writes: an object written with "create
only" (S3's ``If-None-Match: *``, fsspec's ``mode="create"``) fails when the name exists. A fit
that writes a run takes the next number under ``<url>/leases/`` that way
(``leases/000000003.json``: its host, process, start and heartbeat), so two fits can never hold
the same number, and the holder is the highest number. The holder rewrites its own object every
``seconds / 3`` (the heartbeat, from a daemon thread); another fit takes the run over only when
that lease is released, its heartbeat is older than ``seconds``, or its process is gone from
this same host. Before each snapshot the holder checks that no higher number exists: a fit
whose lease was taken over stops there (:class:`LeaseLost`) instead of writing beside the new
one, and the snapshots' own conditional writes stop it even between two checks.

The heartbeat is compared with this machine's clock: hosts whose clocks differ by more than a
small part of ``seconds`` should use a longer lease (``SCLC_LEASE_SECONDS``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import uuid
from typing import Any

from sclc_lightning._process import pid_alive
from sclc_lightning.store.lock import RunDirectoryLocked
from sclc_lightning.store.manifest import RunDirectoryError

__all__ = ["LEASE_SECONDS", "Lease", "LeaseLost", "make_folder", "numbered", "read_object"]

#: How long a lease lives without a heartbeat (``SCLC_LEASE_SECONDS`` overrides it).
LEASE_SECONDS = 120.0
_NUMBERED = re.compile(r"(\d{9})\.json")


class LeaseLost(RunDirectoryError):
    """Another fit took over the run on object storage; this one must stop writing."""


def numbered(fs: Any, folder: str) -> list[int]:
    """The numbers of the ``<number>.json`` objects under ``folder``, in order (listed afresh)."""
    fs.invalidate_cache(folder)
    try:
        names = fs.ls(folder, detail=False)
    except FileNotFoundError:
        return []
    found = (_NUMBERED.fullmatch(str(name).rstrip("/").rsplit("/", 1)[-1]) for name in names)
    return sorted(int(match.group(1)) for match in found if match)


def make_folder(fs: Any, folder: str) -> None:
    """Make ``folder`` where folders exist (a local filesystem); nothing on an object store,
    whose keys need none (and whose ``makedirs`` may create a bucket: a missing bucket must be
    said, not made)."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    if {"file", "local"} & set(protocols):
        fs.makedirs(folder, exist_ok=True)


def read_object(fs: Any, path: str, limit: int = 1 << 26) -> bytes:
    """The bytes of a small object (a snapshot, a lease), refused past ``limit`` bytes.

    Raises:
        RunDirectoryError: naming the object.
    """
    try:
        size = fs.size(path)
        if size is not None and size > limit:
            raise RunDirectoryError(f"{path} holds {size} bytes, more than a record of the run can; restore it.")
        data: bytes = fs.cat_file(path)
    except FileNotFoundError:
        raise RunDirectoryError(f"{path} is missing; it was listed a moment ago.") from None
    return data


class Lease:
    """The lease of a fit on ``<root>/leases``.

    Args:
        fs: the fsspec filesystem of the run's URL.
        root: the run's path on it.
        url: the run's URL (for messages).
        seconds: how long the lease lives without a heartbeat.
    """

    def __init__(self, fs: Any, root: str, url: str, seconds: float | None = None) -> None:
        self.fs, self.folder, self.url = fs, f"{root}/leases", url
        self.seconds = float(seconds if seconds is not None else os.environ.get("SCLC_LEASE_SECONDS", LEASE_SECONDS))
        if not self.seconds > 0:
            raise ValueError(f"The lease of a run must last more than 0 seconds, got {self.seconds}.")
        self.number: int | None = None
        self.holder = uuid.uuid4().hex
        self._started = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _path(self, number: int) -> str:
        return f"{self.folder}/{number:09d}.json"

    def _record(self, released: bool = False) -> bytes:
        return json.dumps(
            {
                "holder": self.holder,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": self._started,
                "heartbeat": time.time(),
                "seconds": self.seconds,
                "released": released,
            }
        ).encode()

    def _read(self, number: int) -> dict[str, Any]:
        path = self._path(number)
        try:
            record = json.loads(read_object(self.fs, path))
            if not isinstance(record, dict):
                raise ValueError("not an object")
            float(record["heartbeat"]), float(record["seconds"]), int(record["pid"]), str(record["host"])
        except (ValueError, KeyError, TypeError) as err:
            raise RunDirectoryError(f"{path} is not a lease of sclc-lightning ({err}); remove it.") from None
        return record

    def _alive(self, record: dict[str, Any]) -> bool:
        if record.get("released") is True:
            return False
        if record["host"] == socket.gethostname() and not pid_alive(int(record["pid"])):
            return False  # its process is gone from this host: nothing will renew it
        return time.time() - float(record["heartbeat"]) < float(record["seconds"])

    def acquire(self) -> Lease:
        """Take the run, or refuse while another fit holds it.

        Raises:
            RunDirectoryLocked: another fit holds a live lease, naming its host and process.
        """
        numbers = numbered(self.fs, self.folder)
        if numbers:
            record = self._read(numbers[-1])
            if self._alive(record):
                left = float(record["seconds"]) - (time.time() - float(record["heartbeat"]))
                raise RunDirectoryLocked(
                    f"{self.url} is being written by another fit (process {record['pid']} on {record['host']},"
                    f" lease {self._path(numbers[-1])}); wait for it to end, or for its lease to lapse"
                    f" ({left:.0f} s without a heartbeat)."
                )
        number = (numbers[-1] if numbers else 0) + 1
        make_folder(self.fs, self.folder)
        try:
            self.fs.pipe_file(self._path(number), self._record(), mode="create")
        except FileExistsError:
            raise RunDirectoryLocked(
                f"{self.url} was taken by another fit at the same moment ({self._path(number)}); try again."
            ) from None
        self.number = number
        self._thread = threading.Thread(target=self._beat, name="sclc-lease", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.check()
                self.fs.pipe_file(self._path(self.number or 0), self._record())
            except Exception:  # a failed heartbeat is found by the next check before a snapshot
                continue

    def check(self) -> None:
        """Raise unless this fit still holds the run.

        Raises:
            LeaseLost: a higher lease exists (another fit took the run over).
        """
        if self.number is None:
            raise LeaseLost(f"This fit holds no lease on {self.url}.")
        newer = [n for n in numbered(self.fs, self.folder) if n > self.number]
        if newer:
            record = self._read(newer[-1])
            raise LeaseLost(
                f"{self.url} was taken over by another fit (process {record['pid']} on {record['host']},"
                f" {self._path(newer[-1])}) while this one wrote it; this fit stops writing there."
            )

    def release(self) -> None:
        """Give the run up (the next fit need not wait for the lease to lapse)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.number is not None:
            try:
                self.check()
                self.fs.pipe_file(self._path(self.number), self._record(released=True))
            except Exception:  # lost or unreachable: it lapses on its own
                pass
            self.number = None
