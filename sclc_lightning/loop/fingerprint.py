r"""The checkpoint's record of a run's settings, in one place: what it holds, its format
version, how an older version is read, and how two are compared on resume.

A resumed run must share the *fingerprint* of the run it resumes: λ, the mixing policy and its
settings, the corrector and the settings that decide its output, the seed, where generations
start from, the sampler and its settings (``sample_kwargs``) and the structure of the items.
A later feature that changes results adds its field in :func:`build` (absent when at its
default, so that older checkpoints still match) and, when older checkpoints cannot be compared
with the new shape, a new :data:`STATE_FORMAT` with its entry in :data:`FORMATS` and an upgrade in :func:`upgrade`.

Formats (the ``format`` of the loop's checkpoint state):

- 1: the mode's settings as top-level keys, the corrector by name and strength only, no item
  structure and no digest of the manifest's records; still read, what it did not record is not
  compared.
- 2: every setting of the mode and of the corrector (those that decide results), the item
  structure and its field rules, and a digest of each manifest record up to the checkpoint.
- 3: also the real data: its number of items and the SHA-256 of every field of every item
  (``real_data``). Checkpoints of format 2 did not record it; it is not compared for them.
- 4: every recorded callable (schedule, sampler, field rules, rewards, scores, verifiers, the
  callables of correctors and mixing policies) carries its code identity
  (``"module:qualname#code:<digest>"``, :func:`~sclc_lightning._callables.code_identity`), so
  an edited function is a changed setting. Older checkpoints named callables only: they are
  compared by name, with a notice.
- 5: also the λ of every generation a schedule gives (``schedule``), so that a schedule whose
  values changed (its code, a function it calls, a registered schedule edited) is seen whatever
  its identity says. Not compared for older checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sclc_lightning._callables import CODE_MARK, strip_code_identities

if TYPE_CHECKING:
    from sclc_lightning.correctors.base import Corrector
    from sclc_lightning.loop.config import LoopConfig

__all__ = [
    "FORMATS",
    "INTRODUCED",
    "STATE_FORMAT",
    "ResumeRefused",
    "build",
    "check_format",
    "code_changes",
    "fingerprint_changes",
    "records_code",
    "upgrade",
]


class ResumeRefused(ValueError):
    """A checkpoint this fit must not resume: its settings, real data, item structure or format
    differ from this fit's (or its run directory belongs to another run); the message names each
    difference with both values and what to do."""


#: The format this version writes.
STATE_FORMAT = 5
#: Every format this version reads, with what it holds.
FORMATS = {
    1: "mode settings as top-level keys; the corrector's name and strength only",
    2: "every deciding setting, the item structure and the records' digests",
    3: "format 2 and the real data's size and digest",
    4: "format 3 with the code identity of every recorded callable",
    5: "format 4 and the λ of every generation a schedule gives",
}
#: The first format whose callables carry their code identity.
CODE_IDENTITY_FORMAT = 4
#: Fields added after format 1, with the format that added them: a checkpoint of an older format
#: did not record them, so they are not compared when resuming it.
INTRODUCED = {"real_data": 3, "schedule": 5}
# A score program's settings that never decide its scores (recorded before format 4).
_SCORE_PROGRAM_OPERATIONAL = ("timeout", "keep_files", "stderr_lines")
#: The fields :func:`build` leaves out at their default, with that default (shown as such when
#: one side recorded it and the other did not).
_ABSENT_AT_DEFAULT: dict[str, Any] = {"start_from": "previous", "sampler": "sample", "sample_kwargs": {}}
# Format 1 kept these mode settings as top-level keys.
_FORMAT_1_MODE_KEYS = ("real_per_generation", "max_synthetic")


def build(
    config: LoopConfig,
    corrector: Corrector | None,
    item: Mapping[str, Any] | None = None,
    real_data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fingerprint of a run with ``config`` and ``corrector`` (the one in use), and, once
    known, the structure of its items and how their fields are built, and its real data (size
    and digest)."""
    fingerprint: dict[str, Any] = {
        # a schedule is recorded as given (a list, a function's path, a registered name and settings)
        "synthetic_fraction": config.synthetic_fraction if config.schedule is None else config.schedule_description,
        "mode": config.policy.describe()["name"],
        "mode_settings": config.policy.settings(),
        "corrector": corrector.describe() if corrector is not None else None,
        "seed": config.seed,
    }
    if config.schedule is not None:  # the values it gives, whatever the code that gives them
        fingerprint["schedule"] = list(config.schedule)
    if config.start_from != "previous":  # absent from older checkpoints, which continued
        fingerprint["start_from"] = config.start_from
    if config.sampler != "sample":  # likewise absent from older checkpoints
        from sclc_lightning.sampler import describe_sampler

        fingerprint["sampler"] = describe_sampler(config.sampler, identity=True)
    if config.model_corrector is not None:  # a weight-space corrector; absent without one
        fingerprint["model_corrector"] = config.model_corrector.describe()
    if config.sample_kwargs:  # the sampling bias (temperature, ...); absent at the default
        fingerprint["sample_kwargs"] = dict(config.sample_kwargs)
    if item is not None:
        fingerprint["item"] = dict(item)
    if real_data is not None:
        fingerprint["real_data"] = dict(real_data)
    return fingerprint


def check_format(found: Any) -> int:
    """The format of a checkpoint's loop state, if this version reads it.

    Raises:
        ResumeRefused: naming the format found and those this version reads.

    Examples:
        >>> check_format(2)
        2
        >>> try:
        ...     check_format(7)
        ... except ValueError as err:
        ...     print(str(err).rsplit(". ", 1)[-1])
        A newer sclc-lightning wrote it: upgrade the package to resume it.
    """
    if found in FORMATS and not isinstance(found, bool):
        return int(found)
    readable = " and ".join(f"{number} ({what})" for number, what in FORMATS.items())
    newer = isinstance(found, int) and not isinstance(found, bool) and found > STATE_FORMAT
    advice = (
        "A newer sclc-lightning wrote it: upgrade the package to resume it."
        if newer
        else "It was not written by SelfConsumingLoop, or it is damaged."
    )
    raise ResumeRefused(
        f"Checkpoint holds SelfConsumingLoop state format {found!r}; this version reads formats {readable}. {advice}"
    )


def upgrade(old: Mapping[str, Any], old_format: int) -> dict[str, Any]:
    """A fingerprint of ``old_format`` in today's shape (what it did not record stays absent).
    Before format 4 a score program's operational settings (its timeout, ...) were recorded
    with it; they are dropped."""
    if old_format < CODE_IDENTITY_FORMAT and isinstance(old.get("corrector"), Mapping):
        corrector = {
            key: {k: v for k, v in value.items() if k not in _SCORE_PROGRAM_OPERATIONAL}
            if isinstance(value, Mapping) and "command" in value
            else value
            for key, value in old["corrector"].items()
        }
        old = {**old, "corrector": corrector}
    if old_format >= 2:
        return dict(old)
    upgraded = {k: v for k, v in old.items() if k not in _FORMAT_1_MODE_KEYS}
    upgraded["mode_settings"] = {k: old[k] for k in _FORMAT_1_MODE_KEYS if old.get(k) is not None}
    return upgraded


def fingerprint_changes(old: Mapping[str, Any], new: Mapping[str, Any], old_format: int) -> list[str]:
    """What differs between a checkpoint's fingerprint and today's, one ``"key: checkpoint A vs
    now B"`` per difference. A corrector or mode of the same name is compared setting by setting
    (``corrector.num_clusters: checkpoint 16 vs now 8``).

    Checkpoints of format 1 recorded fewer settings (the corrector's name and strength, no item
    structure); what they did not record is not compared.

    Examples:
        >>> fingerprint_changes({"seed": 0, "corrector": {"name": "kmeans", "num_clusters": 16}},
        ...                     {"seed": 0, "corrector": {"name": "kmeans", "num_clusters": 8}}, 2)
        ['corrector.num_clusters: checkpoint 16 vs now 8']
    """
    lenient = old_format < 2
    old = upgrade(old, old_format)
    if old_format < CODE_IDENTITY_FORMAT:  # it named callables only: compare names
        new = strip_code_identities(dict(new))
    changes: list[str] = []
    # both sides' keys: a setting recorded by the checkpoint and left at its default now (absent
    # from this fit's fingerprint) is a change too
    for key in [*new, *(k for k in old if k not in new)]:
        if (lenient and key not in old) or old_format < INTRODUCED.get(key, 0):
            continue
        before = old.get(key, _ABSENT_AT_DEFAULT.get(key))
        now = new.get(key, _ABSENT_AT_DEFAULT.get(key))
        if isinstance(before, dict) and isinstance(now, dict) and before.get("name", 0) == now.get("name", 0):
            for sub in sorted(set(before) | set(now)):
                if lenient and key == "corrector" and sub not in before:
                    continue
                if before.get(sub) != now.get(sub):
                    changes.append(f"{key}.{sub}: checkpoint {before.get(sub)!r} vs now {now.get(sub)!r}")
        elif before != now:
            changes.append(f"{key}: checkpoint {before!r} vs now {now!r}")
    return changes


def code_changes(old: Mapping[str, Any], new: Mapping[str, Any], old_format: int) -> list[str]:
    """The changes of :func:`fingerprint_changes` that are edited code alone: a callable of the
    same name whose code identity differs (``"synthetic_fraction"`` when the schedule function
    was edited). Empty for checkpoints older than code identities.

    Examples:
        >>> code_changes({"sampler": "callable:m:f#code:0123456789abcdef"},
        ...              {"sampler": "callable:m:f#code:fedcba9876543210"}, 4)
        ['sampler']
    """
    if old_format < CODE_IDENTITY_FORMAT:
        return []
    keyed = lambda changes: {c.split(":", 1)[0] for c in changes}  # noqa: E731
    every = keyed(fingerprint_changes(old, new, old_format))
    by_name = keyed(fingerprint_changes(strip_code_identities(dict(old)), strip_code_identities(dict(new)), old_format))
    edited = every - by_name
    # the λ a schedule of the same name (a function, a registered schedule) gives changed: its
    # code, or code or data it reads, was edited
    if (
        "schedule" in every
        and "synthetic_fraction" not in by_name
        and not isinstance(new.get("synthetic_fraction"), list)
    ):
        edited.add("schedule")
    return sorted(edited)


def records_code(fingerprint: Mapping[str, Any]) -> bool:
    """Whether ``fingerprint`` holds any code identity (a callable setting)."""
    return CODE_MARK in repr(fingerprint)
