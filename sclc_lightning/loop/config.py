r"""The loop's settings: validated once, frozen, and fingerprinted for resumes.

:class:`LoopConfig` holds what the user asked for; :meth:`LoopConfig.fingerprint` is the part a
resumed run must share with the run it resumes (:mod:`sclc_lightning.loop.fingerprint` owns its
format and says what differs).
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
from sclc_lightning.items.codec import FieldKey
from sclc_lightning.items.contract import FieldRule, resolve_rules
from sclc_lightning.loop.fingerprint import build as build_fingerprint
from sclc_lightning.mixing.budget import num_synthetic
from sclc_lightning.mixing.policies import (
    MixingPolicy,
    available_mixing_policies,
    get_mixing_policy_class,
    make_mixing_policy,
)
from sclc_lightning.sampler import SamplerSpec

__all__ = ["DEPRECATED_MODE_ARGUMENTS", "LoopConfig"]

#: Loop arguments that moved into ``mode_kwargs`` (still accepted, with a DeprecationWarning).
DEPRECATED_MODE_ARGUMENTS = ("real_per_generation", "max_synthetic")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_optional_count(name: str, value: Any, minimum: int) -> None:
    if value is not None and (not _is_int(value) or value < minimum):
        raise ValueError(f"`{name}` must be None or an integer >= {minimum}, got {value!r}.")


def _check_count(name: str, value: Any, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")


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
    accept_other_real_data: bool = False

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
        accept_other_real_data = given.pop("accept_other_real_data", False)
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
        _check_count("sample_batch_size", sample_batch_size, 1)
        _check_count("shard_rows", shard_rows, 1)
        if start_from not in ("previous", "initial"):
            raise ValueError(f"`start_from` must be 'previous' or 'initial', got {start_from!r}.")
        if not (isinstance(sampler, str) and sampler) and not callable(sampler):
            raise ValueError(f"`sampler` must be a method name, an import path or a callable, got {sampler!r}.")
        for name, flag in (("dry_run", dry_run), ("accept_other_real_data", accept_other_real_data)):
            if not isinstance(flag, bool):
                raise ValueError(f"`{name}` must be True or False, got {flag!r}.")
        policy.check_loop(float(synthetic_fraction), int(generations))
        corrector = make_corrector(corrector, corrector_kwargs)
        for part in (policy, corrector):  # refused now, not when the fit has started
            if part is not None:
                part.settings()
        if initial_images == 0 and generations == 0:
            raise ValueError("`initial_images=0` skips generation 0, so `generations` must be >= 1, got 0.")
        return cls(
            synthetic_fraction=float(synthetic_fraction),
            generations=int(generations),
            images_per_generation=images_per_generation,
            initial_images=images_per_generation if initial_images is None else initial_images,
            policy=policy,
            corrector=corrector,
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
            accept_other_real_data=accept_other_real_data,
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

    def fingerprint(
        self,
        corrector: Corrector | None,
        item: Mapping[str, Any] | None = None,
        real_data: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The settings a resumed run must share with the run it resumes
        (:func:`sclc_lightning.loop.fingerprint.build`)."""
        return build_fingerprint(self, corrector, item, real_data)
