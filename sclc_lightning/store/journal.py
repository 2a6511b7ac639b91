"""The manifest of a run directory on disk: ``manifest.json`` and its journal.

A generation's record is appended to ``manifest.journal`` (one line, written and ``fsync``-ed),
so that a generation costs the same after thousands as after one. The journal names the version
of ``manifest.json`` it extends (its digest): every :data:`JOURNAL_LIMIT` records, and whenever
the manifest changes otherwise (checkpointed, finished, a resume dropping newer generations),
``manifest.json`` is rewritten whole, atomically, and the journal removed; a journal of another
version is ignored, and a last line cut short by a crash is dropped (that generation is sampled
again). :class:`~sclc_lightning.store.synthetic.SyntheticStore` reads and writes the manifest
through :class:`ManifestFiles`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sclc_lightning._files import (
    NotARegularFile,
    atomic_write,
    file_version,
    fsync_folder,
    read_regular,
    sha256_bytes,
)
from sclc_lightning.store.manifest import Manifest, RunDirectoryError, StoredGeneration, manifest_text, parse_manifest

__all__ = ["JOURNAL_FILE", "JOURNAL_LIMIT", "ManifestFiles", "naming"]

#: The journal of records added since ``manifest.json`` was written whole.
JOURNAL_FILE = "manifest.journal"
#: Records the journal holds at most before ``manifest.json`` is written whole again.
JOURNAL_LIMIT = 1000


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """Let an OSError (a full disk, a read-only folder) name the file being written."""
    try:
        yield
    except OSError as err:
        if err.filename:
            raise
        raise OSError(err.errno, f"{err.strerror or err} (writing the run directory)", str(path)) from err


class ManifestFiles:
    """``manifest.json`` and ``manifest.journal`` under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # The manifest last read or written, with the versions of its two files: it is read
        # again only when one of them changed.
        self._manifest: tuple[Any, Manifest] | None = None
        self._base: str | None = None  # the digest of manifest.json, which the journal extends
        self._journaled = 0  # records in the journal

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def journal_path(self) -> Path:
        """Records appended since ``manifest.json`` was last written whole."""
        return self.root / JOURNAL_FILE

    def _versions(self) -> tuple[Any, Any]:
        journal = file_version(self.journal_path) if os.path.lexists(self.journal_path) else None
        return file_version(self.manifest_path), journal

    def read(self) -> Manifest | None:
        """The manifest, or ``None`` when there is none yet.

        Raises:
            RunDirectoryError: it cannot be read or parsed (the message names it and the field).
        """
        try:
            versions = self._versions()
            if self._manifest is not None and self._manifest[0] == versions:
                return self._manifest[1]  # the files this store last read or wrote, unchanged
            data = read_regular(self.manifest_path)
            text = data.decode()
        except FileNotFoundError:
            self._manifest = None
            return None
        except NotARegularFile as err:
            raise RunDirectoryError(
                f"{err}; the manifest is a file the loop wrote. Restore the run directory, or start a new run."
            ) from None
        except (OSError, UnicodeDecodeError) as err:
            raise RunDirectoryError(f"{self.manifest_path} cannot be read: {err}.") from None
        manifest = parse_manifest(text, self.manifest_path)
        self._base = sha256_bytes(data)
        manifest, self._journaled = self._replay(manifest)
        self._manifest = (versions, manifest)
        return manifest

    def _replay(self, manifest: Manifest) -> tuple[Manifest, int]:
        """``manifest`` with the journal's records (when the journal extends this version of
        ``manifest.json``); a last line cut short by a crash is dropped.

        Raises:
            RunDirectoryError: a line is damaged, naming the journal and the line.
        """
        path = self.journal_path
        try:
            lines = read_regular(path).decode().split("\n")
        except FileNotFoundError:
            return manifest, 0
        except (NotARegularFile, OSError, UnicodeDecodeError) as err:
            raise RunDirectoryError(f"{path} cannot be read: {err}.") from None
        try:
            header = json.loads(lines[0])
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("base") != self._base:
            return manifest, 0  # it extends another version of manifest.json: nothing of it counts
        complete = lines[1:-1]  # the text after the last newline is a line cut short, or nothing
        for number, line in enumerate(complete, start=2):
            try:
                entry = json.loads(line)
                record = StoredGeneration.from_json(entry["record"])
                if record.digest() != entry["sha256"]:
                    raise ValueError("its digest does not match its record")
            except (ValueError, KeyError, TypeError) as err:
                raise RunDirectoryError(f"{path}: line {number} is damaged ({err}).") from None
            manifest = manifest.with_generation(record)
        return manifest, len(complete)

    def write(self, manifest: Manifest) -> None:
        """Replace the manifest atomically, whole; the journal is then removed (a journal left by
        a crash between the two extends another version, and is ignored)."""
        with naming(self.root):
            self.root.mkdir(parents=True, exist_ok=True)
        self._manifest = None
        data = manifest_text(manifest).encode()
        with naming(self.manifest_path):
            atomic_write(self.manifest_path, data)
        self._base, self._journaled = sha256_bytes(data), 0
        if os.path.lexists(self.journal_path):
            self.journal_path.unlink()
            fsync_folder(self.root)
        self._manifest = (self._versions(), manifest)

    def compact(self) -> None:
        """Fold the journal into ``manifest.json`` (written whole), for readers of that file alone."""
        manifest = self.read()
        if manifest is not None and os.path.lexists(self.journal_path):
            self.write(manifest)

    def append(self, manifest: Manifest, record: StoredGeneration) -> None:
        """Add ``record`` to the manifest: one line appended to the journal, or the manifest
        written whole every :data:`JOURNAL_LIMIT` records."""
        updated = manifest.with_generation(record)
        if self._base is None or self._journaled >= JOURNAL_LIMIT:
            self.write(updated)
            return
        lines = "" if os.path.lexists(self.journal_path) else json.dumps({"base": self._base}) + "\n"
        lines += json.dumps({"record": record.to_json(), "sha256": record.digest()}, sort_keys=True) + "\n"
        with naming(self.journal_path):
            handle = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                os.write(handle, lines.encode())
                os.fsync(handle)
            finally:
                os.close(handle)
            if lines.startswith('{"base"'):
                fsync_folder(self.root)
        self._journaled += 1
        self._manifest = (self._versions(), updated)
