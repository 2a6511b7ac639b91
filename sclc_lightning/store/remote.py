"""A run directory on object storage: any fsspec URL (``s3://``, ``gs://``, ``az://``, ``file://``).

The loop keeps working in a local POSIX folder (its code, checks and speed unchanged: fsync,
rename, flock) and publishes it to the URL as *snapshots*. The URL holds::

    objects/ab/ab12…ef          each file's bytes, named by their SHA-256 digest, never rewritten
    snapshots/000000007.json    one complete state of the run directory: every file's path, digest, size
    leases/000000002.json       the fit writing the run, one at a time (:mod:`~sclc_lightning.store.lease`)

**Publishing** (:meth:`RemoteRunDirectory.push`) uploads the objects the last snapshot lacks,
then writes the snapshot object last, "create only" under the next number (S3's conditional
write, fsspec's ``mode="create"``). Nothing half-written is ever read: there is no rename on
S3, so a snapshot only names objects that are complete, a name is never reused (objects are
named by content, snapshots by a number written once), and a kill at any moment leaves the
previous snapshot as the run's state. A second writer cannot write the same number: it stops.

**Reading** (:meth:`RemoteRunDirectory.pull`) takes the highest snapshot and makes the local
folder exactly that state: each object's digest and size are verified as it is downloaded (a
file that differs is refused, naming the object), files already there with the right digest are
kept, others are removed. The local folder is a cache: a fit on another machine starts from the
snapshot, and so does a fit on this one after a kill (what the killed fit wrote after its last
snapshot is dropped; the generation is made again from the same model state, bit for bit).

``sclc fit --run_dir s3://bucket/run`` does all of it (a snapshot at every generation's end,
after its checkpoint, and at the fit's end); ``sclc report s3://bucket/run`` reads the latest
snapshot. Tested against an S3 endpoint the tests start (moto); other fsspec stores (GCS, Azure)
go through the same code and are untested here: they need conditional writes ("create only").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sclc_lightning._extras import MissingExtraError, require
from sclc_lightning._files import TEMPORARY_MARK, file_version, sha256_file
from sclc_lightning.store.lease import Lease, make_folder, numbered, read_object
from sclc_lightning.store.lock import RunDirectoryLocked
from sclc_lightning.store.manifest import RunDirectoryError

__all__ = ["MARK", "RemoteRunDirectory", "Snapshot", "is_url", "local_cache"]

#: The snapshot format this version writes and reads.
SNAPSHOT_FORMAT = 1
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Never published: the local lock, the ranks' exchange, temporary and replaced files.
_LOCAL_ONLY = (".sclc.lock", ".sclc.lock.json", ".exchange", ".sclc-remote.json")
#: In the local folder: the URL it mirrors (a folder holding files but no such mark is never
#: made a snapshot's state, which removes the files the snapshot does not name).
MARK = ".sclc-remote.json"
_CHUNK = 1 << 22


def is_url(value: Any) -> bool:
    """Whether ``value`` is a URL (``scheme://…``) rather than a local path.

    Examples:
        >>> is_url("s3://bucket/run"), is_url("runs/a"), is_url(Path("runs/a"))
        (True, False, False)
    """
    return isinstance(value, str) and bool(_URL.match(value))


def local_cache(url: str, purpose: str = "work") -> Path:
    """The local folder that mirrors ``url``: ``$SCLC_RUN_CACHE`` (default
    ``~/.cache/sclc/runs``) ``/<digest of the URL>-<purpose>``; a fit works in ``work``, a
    reader (``sclc report``) pulls into ``read``."""
    base = Path(os.environ.get("SCLC_RUN_CACHE") or Path.home() / ".cache" / "sclc" / "runs")
    return base / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{purpose}"


def _published(relative: PurePosixPath) -> bool:
    return not any(part in _LOCAL_ONLY or TEMPORARY_MARK in part or ".stale-" in part for part in relative.parts)


@dataclass(frozen=True)
class Snapshot:
    """One published state of a run directory.

    Attributes:
        number: its number (the highest is the run's state).
        files: each file's path (relative, ``/``-separated) to its SHA-256 digest and size.
    """

    number: int
    files: dict[str, tuple[str, int]]

    def to_json(self) -> bytes:
        files = {path: [digest, size] for path, (digest, size) in sorted(self.files.items())}
        return json.dumps({"format": SNAPSHOT_FORMAT, "number": self.number, "files": files}).encode()

    @classmethod
    def parse(cls, data: bytes, number: int, where: str) -> Snapshot:
        """A snapshot's object, checked strictly: its format and number, each path inside the run
        folder (no ``..``, no absolute path), each digest 64 hex digits, each size a count.

        Raises:
            RunDirectoryError: naming ``where`` and what is wrong.
        """
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict) or raw.get("format") != SNAPSHOT_FORMAT or raw.get("number") != number:
                raise ValueError(f"format {SNAPSHOT_FORMAT} and number {number} expected")
            files = {}
            for path, (digest, size) in raw["files"].items():
                relative = PurePosixPath(path)
                if relative.is_absolute() or ".." in relative.parts or "\\" in path or not relative.parts:
                    raise ValueError(f"the path {path!r} leaves the run folder")
                if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                    raise ValueError(f"{path!r} has no SHA-256 digest")
                if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                    raise ValueError(f"{path!r} has no size")
                files[str(relative)] = (digest, size)
            folders = {str(parent) for path in files for parent in PurePosixPath(path).parents}
            if folders & files.keys():
                raise ValueError(f"{sorted(folders & files.keys())[0]!r} is both a file and a folder")
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise RunDirectoryError(f"{where} is not a snapshot of sclc-lightning ({err}); restore it.") from None
        return cls(number, files)


class RemoteRunDirectory:
    """A run directory at ``url``, worked on in the local folder ``local``.

    Args:
        url: an fsspec URL (``s3://bucket/run``); its filesystem's package must be installed
            (``pip install 'sclc-lightning[cloud]'`` brings s3fs).
        local: the local folder (default :func:`local_cache`).
        storage_options: passed to fsspec (credentials, endpoint).
        lease_seconds: how long the lease lives without a heartbeat (default
            ``SCLC_LEASE_SECONDS`` or 120).

    Examples:
        >>> import tempfile
        >>> remote = RemoteRunDirectory(Path(tempfile.mkdtemp()).as_uri(), Path(tempfile.mkdtemp()))
        >>> _ = (remote.local / "a.txt").write_text("one")
        >>> remote.push().number, sorted(remote.latest().files)
        (1, ['a.txt'])
    """

    def __init__(
        self,
        url: str,
        local: str | os.PathLike[str] | None = None,
        *,
        storage_options: dict[str, Any] | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        import fsspec

        if not is_url(url):
            raise ValueError(f"{url!r} is not a URL (scheme://…); a local run folder needs no RemoteRunDirectory.")
        self.url = url.rstrip("/")
        if not is_url(self.url) or not self.url.split("://", 1)[1].strip("/"):
            raise ValueError(f"{url!r} names no bucket or folder: give one, e.g. s3://bucket/run.")
        if self.url.split("://", 1)[0].lower() in ("s3", "s3a"):
            require("s3fs", "cloud", "A run directory on S3 (sclc fit --run_dir s3://…)")
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        except ImportError as err:
            raise MissingExtraError(
                f"A run directory at {self.url} needs the filesystem package of its store ({err});"
                ' for S3: pip install "sclc-lightning[cloud]"'
            ) from None
        except ValueError as err:
            raise ValueError(f"{self.url}: {err}") from None
        self.root = self.root.rstrip("/")
        protocols = (self.fs.protocol,) if isinstance(self.fs.protocol, str) else tuple(self.fs.protocol)
        if "memory" in protocols:
            raise ValueError(f"{self.url}: memory:// ends with the process; a run directory must outlive it.")
        self.local = Path(local) if local is not None else local_cache(self.url)
        self.lease = Lease(self.fs, self.root, self.url, lease_seconds)
        self._current: Snapshot | None = None
        self._digests: dict[str, tuple[tuple[int, int, int, int], str, int]] = {}  # path -> (version, digest, size)

    def _object(self, digest: str) -> str:
        return f"{self.root}/objects/{digest[:2]}/{digest}"

    def _snapshot_path(self, number: int) -> str:
        return f"{self.root}/snapshots/{number:09d}.json"

    def latest(self) -> Snapshot | None:
        """The run's state: its highest snapshot (``None`` before the first).

        Raises:
            RunDirectoryError: the snapshot object is damaged, naming it.
        """
        numbers = numbered(self.fs, f"{self.root}/snapshots")
        if not numbers:
            return None
        path = self._snapshot_path(numbers[-1])
        return Snapshot.parse(read_object(self.fs, path), numbers[-1], f"{self.fs.unstrip_protocol(path)}")

    @property
    def snapshot(self) -> Snapshot | None:
        """The snapshot the local folder was last pulled from or published as."""
        return self._current

    def open(self) -> RemoteRunDirectory:
        """Take the run's lease, then make the local folder its latest snapshot (:meth:`pull`).

        Raises:
            RunDirectoryLocked: another fit holds the run.
            RunDirectoryError: the store cannot be reached or read, naming the URL.
        """
        with self._reaching():
            self.lease.acquire()
        try:
            self.read()
        except BaseException:
            self.lease.release()
            raise
        return self

    def read(self) -> Snapshot | None:
        """:meth:`pull`, with the store's own errors (no credentials, no network, no bucket)
        said in one line naming the URL.

        Raises:
            RunDirectoryError: as :meth:`pull`, or the store cannot be reached.
        """
        with self._reaching():
            return self.pull()

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        try:
            yield
        except (RunDirectoryError, RunDirectoryLocked):
            raise
        except Exception as err:  # botocore's NoCredentialsError, a missing bucket, no network, ...
            raise RunDirectoryError(f"{self.url} cannot be read or written: {type(err).__name__}: {err}") from err

    def close(self) -> None:
        """Give the lease up."""
        self.lease.release()

    def _local_files(self) -> dict[str, Path]:
        found = {}
        if self.local.is_dir():
            for path in sorted(self.local.rglob("*")):
                relative = PurePosixPath(path.relative_to(self.local).as_posix())
                if path.is_file() and not path.is_symlink() and _published(relative):
                    found[str(relative)] = path
        return found

    def pull(self) -> Snapshot | None:
        """Make the local folder the latest snapshot's state, verifying every object downloaded.

        Raises:
            RunDirectoryError: an object is missing or its bytes are not the recorded ones.
        """
        snapshot = self.latest()
        wanted = {} if snapshot is None else snapshot.files
        self._claim_local()
        present = self._local_files()
        for relative in sorted(present.keys() - wanted.keys()):
            present[relative].unlink()
        for relative, (digest, size) in wanted.items():
            path = self.local / relative
            if relative in present and path.stat().st_size == size and self._digest(relative, path)[0] == digest:
                continue
            self._download(digest, size, path, snapshot)
            self._digest(relative, path)
        _remove_empty_folders(self.local)
        self._current = snapshot
        return snapshot

    def _claim_local(self) -> None:
        """Make the local folder this URL's mirror, refusing a folder that holds anything else
        (pulling removes what the snapshot does not name).

        Raises:
            RunDirectoryError: naming the folder, the URL it mirrors if any, and the fix.
        """
        mark = self.local / MARK
        if mark.is_file():
            try:
                mirrored = json.loads(mark.read_text()).get("url")
            except (ValueError, AttributeError, OSError):
                mirrored = None
            if mirrored == self.url:
                return
            raise RunDirectoryError(
                f"{self.local} mirrors {mirrored!r}, not {self.url}; give another local folder for this URL."
            )
        if self.local.exists() and (not self.local.is_dir() or any(self.local.iterdir())):
            raise RunDirectoryError(
                f"{self.local} is not empty and is no copy of {self.url}: reading the run there would remove its"
                " files. Give an empty or new folder."
            )
        self.local.mkdir(parents=True, exist_ok=True)
        mark.write_text(json.dumps({"url": self.url}))

    def _scratch(self) -> Path:
        """A temporary file beside the local folder, never inside it (the loop refuses files its
        records do not name), on the same filesystem (for the rename)."""
        self.local.parent.mkdir(parents=True, exist_ok=True)
        return self.local.parent / f".{self.local.name}{TEMPORARY_MARK}{uuid.uuid4().hex}"

    def _download(self, digest: str, size: int, path: Path, snapshot: Snapshot | None) -> None:
        source = self._object(digest)
        incoming = self._scratch()
        try:
            try:
                self.fs.get_file(source, str(incoming))
            except FileNotFoundError:
                raise RunDirectoryError(
                    f"{self.fs.unstrip_protocol(source)} is missing; snapshot {snapshot and snapshot.number} of"
                    f" {self.url} records it as {path.relative_to(self.local)}. Restore it, or remove that snapshot"
                    " object to go back to the one before."
                ) from None
            got = incoming.stat().st_size, sha256_file(incoming, chunk=_CHUNK)
            if got != (size, digest):
                raise RunDirectoryError(
                    f"{self.fs.unstrip_protocol(source)} holds {got[0]} bytes of digest {got[1][:16]}…, not the"
                    f" {size} bytes of digest {digest[:16]}… that snapshot {snapshot and snapshot.number} of"
                    f" {self.url} records for {path.relative_to(self.local)}; it was damaged or replaced. Restore it,"
                    " or remove that snapshot object to go back to the one before."
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(incoming, path)
        finally:
            incoming.unlink(missing_ok=True)

    def _digest(self, relative: str, path: Path) -> tuple[str, int]:
        """``(digest, size)`` of a local file, computed again only when the file changed."""
        version = file_version(path)
        known = self._digests.get(relative)
        if known is not None and known[0] == version:
            return known[1], known[2]
        digest = sha256_file(path, chunk=_CHUNK)
        if file_version(path) != version:
            raise RunDirectoryError(f"{path} changed while it was read for a snapshot; publish again.")
        self._digests[relative] = (version, digest, version[1])
        return digest, version[1]

    def push(self) -> Snapshot | None:
        """Publish the local folder as the next snapshot (``None`` when nothing changed since
        the last one): the new objects first, the snapshot object last, "create only".

        Raises:
            LeaseLost: another fit took the run over (when this one holds a lease).
            RunDirectoryError: another fit wrote that snapshot number first.
        """
        files = {relative: self._digest(relative, path) for relative, path in self._local_files().items()}
        if self._current is not None and files == self._current.files:
            return None
        known = {digest for digest, _ in (self._current.files.values() if self._current else ())}
        for relative, (digest, _) in files.items():
            if digest not in known:
                self._upload(self.local / relative, digest)
                known.add(digest)
        if self.lease.number is not None:
            self.lease.check()
        numbers = numbered(self.fs, f"{self.root}/snapshots")
        snapshot = Snapshot((numbers[-1] if numbers else 0) + 1, files)
        if self._current is not None and numbers and numbers[-1] != self._current.number:
            raise RunDirectoryError(
                f"{self.url} has snapshot {numbers[-1]}, written by another fit after this one's"
                f" {self._current.number}; this fit stops writing there."
            )
        make_folder(self.fs, f"{self.root}/snapshots")
        try:
            self.fs.pipe_file(self._snapshot_path(snapshot.number), snapshot.to_json(), mode="create")
        except FileExistsError:
            raise RunDirectoryError(
                f"{self.url}: snapshot {snapshot.number} was written by another fit at the same moment; this fit"
                " stops writing there."
            ) from None
        self._current = snapshot
        return snapshot

    def _upload(self, path: Path, digest: str) -> None:
        """Upload ``path`` as the object of ``digest`` (already there: nothing to do; content
        names it). The bytes sent are checked to be those digested."""
        target = self._object(digest)
        make_folder(self.fs, target.rsplit("/", 1)[0])
        staged = self._scratch()
        try:
            shutil.copyfile(path, staged)  # a copy nothing else writes: what is sent is what is checked
            if sha256_file(staged, chunk=_CHUNK) != digest:
                raise RunDirectoryError(f"{path} changed while it was published; publish again.")
            try:
                self.fs.put_file(str(staged), target, mode="create")
            except FileExistsError:
                pass  # the same bytes, uploaded before (a kill between the objects and the snapshot)
        finally:
            staged.unlink(missing_ok=True)


def _remove_empty_folders(root: Path) -> None:
    for folder in sorted((p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
