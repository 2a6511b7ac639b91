"""The manifest of a run directory: the run's id, configuration and item structure, and one record
per generation on disk with the name, row count and SHA-256 digest of each of its files.

Parsing checks every field it reads and names the file and the field in its error; nothing is
trusted because it parsed as JSON. Part of :class:`~sclc_lightning.store.synthetic.SyntheticStore`,
the only owner of the directory's format.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST_FORMAT",
    "SHARD_NAME",
    "Manifest",
    "RunDirectoryError",
    "Shard",
    "StoredGeneration",
    "manifest_text",
    "parse_manifest",
]

#: 2: shards carry their SHA-256 digest and the strings file its digest; 1 is still read (its
#: files cannot be checked against digests).
MANIFEST_FORMAT = 2
#: The only file names a record may give its shards: plain names inside the generation's folder.
SHARD_NAME = re.compile(r"shard_\d{5}\.safetensors")


class RunDirectoryError(RuntimeError):
    """A run directory's files are missing, damaged, or not what the manifest or the checkpoint
    says; the message names the file and what differs."""


@dataclass(frozen=True)
class Shard:
    """One shard file of a generation.

    Attributes:
        name: its file name in the generation's folder.
        rows: the items it holds.
        sha256: the hex SHA-256 digest of its bytes (``None`` in manifests of format 1).
    """

    name: str
    rows: int
    sha256: str | None = None


@dataclass(frozen=True)
class StoredGeneration:
    """The manifest's record of one generation on disk.

    Attributes:
        generation: the generation that trains on these items.
        count: the number of items.
        shards: its shard files, in order.
        sampled_at_step: the global step of the model that sampled them.
        settings: the loop's settings fingerprint when they were made; a resumed run reuses
            them only when its own is the same.
        seconds_sampling: time spent sampling.
        seconds_correcting: time spent correcting.
        strings_sha256: the digest of ``strings.json`` (string fields), ``None`` without one.
        statistics: what the corrector measured while making them (``reward_mean``,
            ``acceptance_rate``, ``oversampling``, ...), ``None`` when nothing was measured.
    """

    generation: int
    count: int
    shards: tuple[Shard, ...]
    sampled_at_step: int
    settings: dict[str, Any]
    seconds_sampling: float
    seconds_correcting: float
    strings_sha256: str | None = None
    statistics: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON record, with the mode, λ, corrector, strength and seed spelled out for readers."""
        corrector = self.settings.get("corrector")
        statistics = {} if self.statistics is None else {"statistics": dict(self.statistics)}  # absent: older digests
        return {
            **statistics,
            "generation": self.generation,
            "count": self.count,
            "shards": [[s.name, s.rows, s.sha256] for s in self.shards],
            "strings_sha256": self.strings_sha256,
            "sampled_at_step": self.sampled_at_step,
            "fingerprint": self.settings,
            "seconds_sampling": self.seconds_sampling,
            "seconds_correcting": self.seconds_correcting,
            "mode": self.settings.get("mode"),
            "synthetic_fraction": self.settings.get("synthetic_fraction"),
            "corrector": corrector["name"] if isinstance(corrector, dict) else None,
            "strength": corrector["strength"] if isinstance(corrector, dict) else 0.0,
            "seed": self.settings.get("seed"),
        }

    def text(self) -> str:
        """The record as one line of sorted JSON; computed once (a frozen record never changes),
        so that rewriting the manifest of a long run does not encode every record again."""
        cached: str | None = self.__dict__.get("_text")
        if cached is None:
            cached = json.dumps(self.to_json(), sort_keys=True)
            object.__setattr__(self, "_text", cached)
        return cached

    def digest(self) -> str:
        """A SHA-256 digest of the record (what a checkpoint remembers of it); computed once."""
        cached: str | None = self.__dict__.get("_digest")
        if cached is None:
            cached = hashlib.sha256(self.text().encode()).hexdigest()
            object.__setattr__(self, "_digest", cached)
        return cached

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> StoredGeneration:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: a field is missing or has the wrong type (the message names it).
        """
        shards = []
        for entry in _field(record, "shards", list):
            if not (isinstance(entry, list) and len(entry) in (2, 3)):
                raise ValueError(f"a shard entry must be [name, rows, sha256], got {entry!r}")
            name, rows, digest = (*entry, None) if len(entry) == 2 else entry
            if not isinstance(name, str) or not SHARD_NAME.fullmatch(name):
                raise ValueError(f"shard name {name!r} is not a plain shard file name (shard_NNNNN.safetensors)")
            if not _is_count(rows) or not (digest is None or _is_digest(digest)):
                raise ValueError(f"shard {name} has rows {rows!r} and digest {digest!r}")
            shards.append(Shard(name, rows, digest))
        strings = record.get("strings_sha256")
        if not (strings is None or _is_digest(strings)):
            raise ValueError(f"`strings_sha256` must be a SHA-256 hex digest or null, got {strings!r}")
        return cls(
            generation=_field(record, "generation", int),
            count=_field(record, "count", int),
            shards=tuple(shards),
            sampled_at_step=_field(record, "sampled_at_step", int),
            settings=dict(record.get("fingerprint") or {}),
            seconds_sampling=float(_field(record, "seconds_sampling", (int, float))),
            seconds_correcting=float(_field(record, "seconds_correcting", (int, float))),
            strings_sha256=strings,
            statistics=_statistics(record.get("statistics")),
        )


def _statistics(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in value.items()
    ):
        raise ValueError(f"`statistics` must map names to numbers, got {value!r}")
    return {k: float(v) for k, v in value.items()}


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def _field(record: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value: Any = record.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"`{key}` is {value!r}")
    if kind is int and not _is_count(value):
        raise ValueError(f"`{key}` is negative: {value!r}")
    return value


@dataclass(frozen=True)
class Manifest:
    """A run's ``manifest.json``: its id, configuration, item structure and generations.

    Attributes:
        run_id: the run that owns the folder.
        config: the loop's configuration, for readers.
        item: the structure of the items (``ItemCodec.to_json``).
        generations: one record per generation on disk, in order.
        checkpointed: whether a checkpoint of the run has been saved (a run that crashed before
            its first checkpoint cannot be resumed, and its folder may be started over).
        finished: whether the run's fit ended.
        format: the format the manifest was read in.
    """

    run_id: str
    config: dict[str, Any]
    item: dict[str, Any]
    generations: tuple[StoredGeneration, ...] = ()
    checkpointed: bool = False
    finished: bool = False
    format: int = MANIFEST_FORMAT

    def records(self) -> dict[int, StoredGeneration]:
        """The records by generation (built once: a manifest never changes)."""
        cached: dict[int, StoredGeneration] | None = self.__dict__.get("_records")
        if cached is None:
            cached = {record.generation: record for record in self.generations}
            object.__setattr__(self, "_records", cached)
        return dict(cached)

    def with_generation(self, record: StoredGeneration) -> Manifest:
        """This manifest with ``record`` as its last generation: records of the same and later
        generations came from a history that is being redone and are dropped."""
        appended = not self.generations or self.generations[-1].generation < record.generation
        kept = self.generations if appended else tuple(r for r in self.generations if r.generation < record.generation)
        updated = Manifest(self.run_id, self.config, self.item, (*kept, record), self.checkpointed, self.finished)
        cached = self.__dict__.get("_records")
        if appended and cached is not None:  # the usual case, the next generation: no scan of the others
            object.__setattr__(updated, "_records", {**cached, record.generation: record})
        return updated

    def up_to(self, last: int) -> Manifest:
        """This manifest without the records of generations after ``last``."""
        kept = tuple(r for r in self.generations if r.generation <= last)
        return Manifest(self.run_id, self.config, self.item, kept, self.checkpointed, self.finished)

    def with_state(self, *, checkpointed: bool | None = None, finished: bool | None = None) -> Manifest:
        """This manifest marked checkpointed or finished."""
        return Manifest(
            self.run_id,
            self.config,
            self.item,
            self.generations,
            self.checkpointed if checkpointed is None else checkpointed,
            self.finished if finished is None else finished,
        )

    def to_json(self, records: bool = True) -> dict[str, Any]:
        """The manifest as JSON data (``records=False``: without the generations' records)."""
        payload: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "run_id": self.run_id,
            "config": self.config,
            "item": self.item,
            "checkpointed": self.checkpointed,
            "finished": self.finished,
        }
        if records:
            payload["generations"] = [record.to_json() for record in self.generations]
        return payload


def parse_manifest(text: str, path: Path) -> Manifest:
    """Read a manifest's text.

    Raises:
        RunDirectoryError: not JSON, an unknown format, or a field missing or of the wrong type;
            the message names ``path`` and the field.
    """
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        raise RunDirectoryError(f"{path} is not valid JSON ({err}).") from None
    if not isinstance(payload, dict):
        raise RunDirectoryError(f"{path} must hold a JSON object, got {type(payload).__name__}.")
    form = payload.get("format")
    if form not in (1, MANIFEST_FORMAT):
        raise ValueError(f"{path} has manifest format {form!r}; this version reads formats 1 and {MANIFEST_FORMAT}.")
    if not isinstance(payload.get("run_id"), str) or not isinstance(payload.get("generations", []), list):
        raise RunDirectoryError(f"{path} has no valid `run_id` and `generations`.")
    records = []
    for index, record in enumerate(payload.get("generations", [])):
        try:
            if not isinstance(record, dict):
                raise ValueError(f"it is a {type(record).__name__}, not an object")
            records.append(StoredGeneration.from_json(record))
        except ValueError as err:
            raise RunDirectoryError(f"{path}: generation record {index} is damaged: {err}.") from None
    numbers = [r.generation for r in records]
    if numbers != sorted(set(numbers)):
        raise RunDirectoryError(f"{path}: the generation records are not in order or repeat: {numbers}.")
    return Manifest(
        payload["run_id"],
        dict(payload.get("config") or {}),
        dict(payload.get("item") or {}),
        tuple(records),
        # format 1 did not record these: assume the worst case for a new run (never start over)
        bool(payload.get("checkpointed", form == 1)),
        bool(payload.get("finished", form == 1)),
        form,
    )


def manifest_text(manifest: Manifest) -> str:
    """JSON with one line per top-level entry and per generation record: readable, and written
    by the C encoder (``indent`` would select Python's slower one, which a long run calls every
    generation on a growing manifest)."""
    lines = []
    header: dict[str, Any] = {**manifest.to_json(records=False), "generations": None}
    for key, value in sorted(header.items()):
        if key == "generations":
            records = ",\n".join(f"    {r.text()}" for r in manifest.generations)
            lines.append(f'  "generations": [\n{records}\n  ]' if records else '  "generations": []')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, sort_keys=True)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"
