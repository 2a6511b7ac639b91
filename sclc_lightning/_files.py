"""Files that another process may read: written whole or not at all, durable once renamed, and
their digests.

Every file of the package that a second process (a resumed run, a grid point, a DDP rank, the
report) may read is written here: to a temporary file with a unique name in the same folder,
flushed and ``fsync``-ed, renamed over the target, and the folder ``fsync``-ed so that the
rename itself survives a power loss. A reader sees the old file or the new one, never a part;
two writers that start together write two temporary files and the last rename wins.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "TEMPORARY_MARK",
    "NotARegularFile",
    "atomic_path",
    "atomic_write",
    "check_local_folder",
    "check_regular",
    "file_version",
    "fsync_folder",
    "open_regular",
    "read_regular",
    "sha256_bytes",
    "sha256_file",
    "temporary_name",
    "write_synced",
]

#: What a temporary name carries after the target's name: ``.<name>.tmp-<32 hex digits>``.
TEMPORARY_MARK = ".tmp-"


def check_local_folder(value: str | os.PathLike[str], what: str) -> None:
    """Refuse a URL (``s3://bucket/run``, ``gs://…``, ``file://…``) where a run's folder is
    given: the loop needs a local or shared POSIX folder (``fsync``, ``rename``, ``flock``), and
    ``Path("s3://b/r")`` would silently be the local folder ``s3:/b/r``.

    Raises:
        ValueError: naming ``what`` and the URL.

    Examples:
        >>> check_local_folder("runs/a", "output_dir")
        >>> try:
        ...     check_local_folder("s3://bucket/run", "output_dir")
        ... except ValueError as err:
        ...     print(str(err)[:49])
        output_dir 's3://bucket/run' is an object-storage
    """
    import re

    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", os.fspath(value)):
        raise ValueError(
            f"{what} {os.fspath(value)!r} is an object-storage or URL location: the loop writes a local or shared"
            " POSIX folder (fsync, rename, flock). Give such a path (NFS, Lustre, GPFS), or put a run on object"
            " storage with `sclc fit --run_dir s3://…` or RemoteRunDirectory (docs/scale.md); grids and benches"
            " on object storage are not supported yet."
        )


def temporary_name(path: Path) -> Path:
    """A unique hidden name beside ``path`` (same folder, hence same filesystem, for the rename).

    Examples:
        >>> temporary_name(Path("run/manifest.json")).name.startswith(".manifest.json.tmp-")
        True
    """
    return path.with_name(f".{path.name}{TEMPORARY_MARK}{uuid.uuid4().hex}")


def file_version(path: str | os.PathLike[str]) -> tuple[int, int, int, int]:
    """What identifies one version of a file without reading it: its inode (a rename gives a new
    one), size, modification and change times (the link itself, not what it points to)."""
    info = os.lstat(path)
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def fsync_folder(folder: Path) -> None:
    """Make the entries of ``folder`` (a rename, a new file) durable. A no-op where folders
    cannot be opened (Windows)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(handle)
    except OSError:  # pragma: no cover - filesystems that refuse fsync on folders
        pass
    finally:
        os.close(handle)


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and ``fsync`` it (for files inside a temporary folder that is
    renamed into place as a whole)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to (with any library's ``save``); when
    the block ends without an exception, the file is ``fsync``-ed and renamed over ``path``, and
    the folder ``fsync``-ed. On an exception the temporary file is removed and ``path`` is left
    as it was.

    Examples:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "table.csv"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("a,b\\n1,2\\n")
        >>> target.read_text()
        'a,b\\n1,2\\n'
    """
    target = Path(path)
    tmp = temporary_name(target)
    try:
        yield tmp
        handle = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
        os.replace(tmp, target)
        fsync_folder(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Replace ``path``'s content with ``data`` (text is written as UTF-8), whole or not at all.

    Examples:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "state.json"
        >>> atomic_write(target, '{"generation": 3}')
        >>> target.read_text()
        '{"generation": 3}'
    """
    payload = data.encode() if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


def sha256_bytes(data: bytes) -> str:
    """The SHA-256 hex digest of ``data``.

    Examples:
        >>> sha256_bytes(b"")[:16]
        'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of the regular file at ``path``, read in chunks of ``chunk`` bytes.

    Raises:
        NotARegularFile: it is a link, a FIFO, a device, a socket or a folder (see
            :func:`open_regular`).
    """
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class NotARegularFile(OSError):
    """A path that should be a file the package wrote is a symbolic link, a FIFO, a device, a
    socket or a folder: reading it could hang (a FIFO), never end (``/dev/zero``) or leave the
    folder it belongs to (a link)."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def check_regular(path: str | os.PathLike[str], folder: bool = False) -> None:
    """Refuse ``path`` unless it is a regular file (``folder=True``: a real folder), itself and
    not through a symbolic link; nothing is opened.

    Raises:
        FileNotFoundError: there is nothing at ``path``.
        NotARegularFile: naming the path and what it is.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "link").symlink_to("/dev/zero")
        >>> try:
        ...     check_regular(root / "link")
        ... except NotARegularFile as err:
        ...     print(str(err).split(": ", 1)[1])
        is a symbolic link, not a regular file
    """
    mode = os.lstat(path).st_mode
    wanted, name = (stat.S_ISDIR, "folder") if folder else (stat.S_ISREG, "regular file")
    if not wanted(mode):
        raise NotARegularFile(f"{os.fspath(path)}: is {_kind(mode)}, not a {name}")


@contextlib.contextmanager
def open_regular(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """The regular file at ``path``, open for reading: opened without following a symbolic link
    and without blocking on a FIFO, and checked to be a regular file once open (no window between
    the check and the read).

    Raises:
        FileNotFoundError: there is nothing at ``path``.
        NotARegularFile: it is a link, a FIFO, a device, a socket or a folder.
    """
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.EMLINK):  # O_NOFOLLOW met a symbolic link
            raise NotARegularFile(f"{os.fspath(path)}: is a symbolic link, not a regular file") from None
        raise
    with os.fdopen(handle, "rb") as opened:
        mode = os.fstat(opened.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(f"{os.fspath(path)}: is {_kind(mode)}, not a regular file")
        yield opened


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file at ``path`` (see :func:`open_regular`)."""
    with open_regular(path) as handle:
        return handle.read()
