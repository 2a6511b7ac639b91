r"""The loop's settings: validated once, frozen, and fingerprinted for resumes.

:class:`LoopConfig` holds what the user asked for; :meth:`LoopConfig.fingerprint` is the part a
resumed run must share with the run it resumes, and :func:`fingerprint_changes` says what differs.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sclc_lightning.correctors.base import Corrector, make_corrector
from sclc_lightning.data.budget import num_synthetic
from sclc_lightning.data.contract import FieldRule, resolve_rules
from sclc_lightning.data.items import FieldKey
from sclc_lightning.data.policies import (
    MixingPolicy,
    available_mixing_policies,
    get_mixing_policy_class,
    make_mixing_policy,
)
from sclc_lightning.sampler import SamplerSpec, describe_sampler

__all__ = ["DEPRECATED_MODE_ARGUMENTS", "LoopConfig", "fingerprint_changes"]

#: Loop arguments that moved into ``mode_kwargs`` (still accepted, with a DeprecationWarning).
DEPRECATED_MODE_ARGUMENTS = ("real_per_generation", "max_synthetic")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_optional_count(name: str, value: Any, minimum: int) -> None:
    if value is not None and (not _is_int(value) or value < minimum):
        raise ValueError(f"`{name}` must be None or an integer >= {minimum}, got {value!r}.")


def _policies_taking(argument: str) -> list[str]:
    return [
        name
        for name in available_mixing_policies()
        if argument in inspect.signature(get_mixing_policy_class(name)).parameters
    ]


def _merge_deprecated(
    mode: MixingPolicy | str, mode_kwargs: Mapping[str, Any] | None, deprecated: Mapping[str, Any]
) -> dict[str, Any] | None:
    """``mode_kwargs`` with the deprecated loop arguments moved in, each with a warning."""
    merged = dict(mode_kwargs or {})
    for argument, value in deprecated.items():
        if value is None:
            continue
        takers = _policies_taking(argument)
        if not isinstance(mode, str) or mode not in takers:
            where = ", ".join(map(repr, takers)) or "none"
            raise ValueError(
                f"`{argument}` is only used in mode {where}, got {value!r} with mode {mode!r};"
                " mode settings go in `mode_kwargs`."
            )
        if argument in merged:
            raise ValueError(f"`{argument}` is given twice: as a loop argument and in `mode_kwargs`.")
        warnings.warn(
            f"SelfConsumingLoop(`{argument}`=...) is deprecated; pass mode_kwargs={{{argument!r}: {value!r}}}.",
            DeprecationWarning,
            stacklevel=4,
        )
        merged[argument] = value
    return merged or None


@dataclass(frozen=True)
class LoopConfig:
    """The validated settings of a :class:`~sclc_lightning.SelfConsumingLoop` (see its arguments)."""

    synthetic_fraction: float
    generations: int
    images_per_generation: int | None
    initial_images: int | None
    policy: MixingPolicy
    corrector: Corrector | None
    output_dir: Path | None
    seed: int
    sample_batch_size: int
    data_field: FieldKey
    condition_field: FieldKey
    shard_rows: int
    start_from: str = "previous"
    sampler: SamplerSpec = "sample"
    fields: dict[FieldKey, FieldRule] = field(default_factory=dict)
    dry_run: bool = True

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> LoopConfig:
        """Validate the arguments of :class:`~sclc_lightning.SelfConsumingLoop` (which holds
        their defaults); messages name the argument and the value.

        Raises:
            ValueError: an argument is out of range.
            TypeError: an unknown argument.
        """
        given = dict(arguments)
        deprecated = {name: given.pop(name, None) for name in DEPRECATED_MODE_ARGUMENTS}
        synthetic_fraction, generations = given.pop("synthetic_fraction"), given.pop("generations")
        images_per_generation, initial_images = given.pop("images_per_generation"), given.pop("initial_images")
        mode, mode_kwargs, seed = given.pop("mode"), given.pop("mode_kwargs"), given.pop("seed")
        corrector, corrector_kwargs = given.pop("corrector"), given.pop("corrector_kwargs")
        sample_batch_size, shard_rows = given.pop("sample_batch_size"), given.pop("shard_rows")
        start_from = given.pop("start_from", "previous")
        sampler, fields, dry_run = given.pop("sampler", "sample"), given.pop("fields", None), given.pop("dry_run", True)
        output_dir, data_field, condition_field = (
            given.pop(k) for k in ("output_dir", "data_field", "condition_field")
        )
        if given:
            raise TypeError(f"SelfConsumingLoop got unexpected arguments {sorted(given)}.")
        if (
            isinstance(synthetic_fraction, bool)
            or not isinstance(synthetic_fraction, (int, float))
            or not math.isfinite(synthetic_fraction)
            or synthetic_fraction < 0
        ):
            raise ValueError(f"`synthetic_fraction` must be a finite number >= 0, got {synthetic_fraction!r}.")
        if not _is_int(generations) or generations < 0:
            raise ValueError(f"`generations` must be an integer >= 0, got {generations!r}.")
        _check_optional_count("images_per_generation", images_per_generation, 1)
        _check_optional_count("initial_images", initial_images, 0)
        if isinstance(mode, str):
            get_mixing_policy_class(mode)  # an unknown name is refused first, listing the known ones
        policy = make_mixing_policy(mode, _merge_deprecated(mode, mode_kwargs, deprecated))
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"`seed` must be an integer >= 0, got {seed!r}.")
        _check_optional_count("sample_batch_size", sample_batch_size, 1)
        _check_optional_count("shard_rows", shard_rows, 1)
        if start_from not in ("previous", "initial"):
            raise ValueError(f"`start_from` must be 'previous' or 'initial', got {start_from!r}.")
        if not (isinstance(sampler, str) and sampler) and not callable(sampler):
            raise ValueError(f"`sampler` must be a method name, an import path or a callable, got {sampler!r}.")
        if not isinstance(dry_run, bool):
            raise ValueError(f"`dry_run` must be True or False, got {dry_run!r}.")
        policy.check_loop(float(synthetic_fraction), int(generations))
        if initial_images == 0 and generations == 0:
            raise ValueError("`initial_images=0` skips generation 0, so `generations` must be >= 1, got 0.")
        return cls(
            synthetic_fraction=float(synthetic_fraction),
            generations=int(generations),
            images_per_generation=images_per_generation,
            initial_images=images_per_generation if initial_images is None else initial_images,
            policy=policy,
            corrector=make_corrector(corrector, corrector_kwargs),
            output_dir=None if output_dir is None else Path(output_dir),
            seed=int(seed),
            sample_batch_size=int(sample_batch_size),
            data_field=data_field,
            condition_field=condition_field,
            shard_rows=int(shard_rows),
            start_from=start_from,
            sampler=sampler,
            fields=resolve_rules(fields),
            dry_run=dry_run,
        )

    @property
    def first_generation(self) -> int:
        """``1`` when generation 0 is skipped (``initial_images=0``), else ``0``."""
        return 0 if self.initial_images != 0 else 1

    @property
    def num_epochs(self) -> int:
        """Lightning epochs the fit runs: one per trained generation."""
        return self.generations + 1 - self.first_generation

    def generation_of_epoch(self, epoch: int) -> int:
        """The generation trained in Lightning epoch ``epoch``."""
        return epoch + self.first_generation

    def budget(self, generation: int) -> int | None:
        """The training samples requested for ``generation`` (``None``: one pass)."""
        trains_zero = generation == 0 and self.first_generation == 0
        return self.initial_images if trains_zero else self.images_per_generation

    def num_synthetic(self, n: int) -> int:
        r""":math:`\lfloor \lambda n \rfloor`."""
        return num_synthetic(self.synthetic_fraction, n)

    def fingerprint(self, corrector: Corrector | None, item: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The settings a resumed run must share with the run it resumes: λ, the mixing policy
        and its settings, the corrector (``corrector``, the one in use) and all its settings, the
        seed, where generations start from when not the previous one, the sampler when not
        ``sample`` and, once known, the structure of the items and how their fields are built."""
        fingerprint: dict[str, Any] = {
            "synthetic_fraction": self.synthetic_fraction,
            "mode": self.policy.describe()["name"],
            "mode_settings": self.policy.settings(),
            "corrector": corrector.describe() if corrector is not None else None,
            "seed": self.seed,
        }
        if self.start_from != "previous":  # absent from older checkpoints, which continued
            fingerprint["start_from"] = self.start_from
        if self.sampler != "sample":  # likewise absent from older checkpoints
            fingerprint["sampler"] = describe_sampler(self.sampler)
        if item is not None:
            fingerprint["item"] = dict(item)
        return fingerprint


def _upgrade_format_1(old: Mapping[str, Any]) -> dict[str, Any]:
    """A fingerprint of checkpoint format 1 in today's shape: the mode settings were top-level
    keys, and the corrector was described by its name and strength only."""
    upgraded = {k: v for k, v in old.items() if k not in DEPRECATED_MODE_ARGUMENTS}
    upgraded["mode_settings"] = {k: old[k] for k in DEPRECATED_MODE_ARGUMENTS if old.get(k) is not None}
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
    if lenient:
        old = _upgrade_format_1(old)
    changes: list[str] = []
    for key, now in new.items():
        if lenient and key not in old:
            continue
        before = old.get(key)
        if isinstance(before, dict) and isinstance(now, dict) and before.get("name", 0) == now.get("name", 0):
            for sub in sorted(set(before) | set(now)):
                if lenient and key == "corrector" and sub not in before:
                    continue
                if before.get(sub) != now.get(sub):
                    changes.append(f"{key}.{sub}: checkpoint {before.get(sub)!r} vs now {now.get(sub)!r}")
        elif before != now:
            changes.append(f"{key}: checkpoint {before!r} vs now {now!r}")
    return changes
