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
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "TEMPORARY_MARK",
    "atomic_path",
    "atomic_write",
    "fsync_folder",
    "sha256_bytes",
    "sha256_file",
    "temporary_name",
    "write_synced",
]

#: What a temporary name carries after the target's name: ``.<name>.tmp-<32 hex digits>``.
TEMPORARY_MARK = ".tmp-"


def temporary_name(path: Path) -> Path:
    """A unique hidden name beside ``path`` (same folder, hence same filesystem, for the rename).

    Examples:
        >>> temporary_name(Path("run/manifest.json")).name.startswith(".manifest.json.tmp-")
        True
    """
    return path.with_name(f".{path.name}{TEMPORARY_MARK}{uuid.uuid4().hex}")


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
    """The SHA-256 hex digest of the file at ``path``, read in chunks of ``chunk`` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
