r"""The loop's settings: validated once, frozen, and fingerprinted for resumes.

:class:`LoopConfig` holds what the user asked for;
:func:`sclc_lightning.loop.fingerprint.build` takes from it the part a resumed run must share with
the run it resumes (that module owns its format and says what differs; it reads this one, never
the other way round).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sclc_lightning._callables import describe_callable
from sclc_lightning._checks import is_integer, is_number, plain
from sclc_lightning._settings import jsonable
from sclc_lightning.correctors.base import Corrector, make_corrector
from sclc_lightning.correctors.model import ModelCorrector, make_model_corrector
from sclc_lightning.items.codec import FieldKey
from sclc_lightning.items.contract import FieldRule, resolve_rules
from sclc_lightning.mixing.budget import num_synthetic
from sclc_lightning.mixing.policies import (
    MixingPolicy,
    get_mixing_policy_class,
    make_mixing_policy,
)
from sclc_lightning.mixing.schedule import resolve_schedule
from sclc_lightning.sampler import SamplerSpec

__all__ = ["LoopConfig", "LoopSettings"]

#: Loop arguments that moved into ``mode_kwargs`` (still accepted, with a DeprecationWarning).


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_optional_count(name: str, value: Any, minimum: int) -> None:
    if value is not None and (not _is_int(value) or value < minimum):
        raise ValueError(f"`{name}` must be None or an integer >= {minimum}, got {value!r}.")


def _check_count(name: str, value: Any, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")


#: What the loop passes to the sampler itself: not sampling settings.
_LOOP_SAMPLER_ARGUMENTS = ("num_samples", "generator", "conditions")


def _check_sample_kwargs(value: Any) -> dict[str, Any]:
    """``sample_kwargs`` as a plain dict of JSON-safe settings (they are recorded)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k.isidentifier() for k in value):
        raise ValueError(
            f"`sample_kwargs` must be a mapping of keyword names to values, e.g. {{'temperature': 0.9}}, got {value!r}."
        )
    taken = sorted(set(value) & set(_LOOP_SAMPLER_ARGUMENTS))
    if taken:
        raise ValueError(f"`sample_kwargs` may not set {taken}: the loop passes them to the sampler itself.")
    checked = {}
    for key, setting in value.items():
        if is_number(setting) and not isinstance(setting, (int, float)):
            setting = int(setting) if is_integer(setting) else float(setting)  # a NumPy scalar
        if isinstance(setting, float) and not math.isfinite(setting):
            raise ValueError(f"`sample_kwargs[{key!r}]` must be a finite number, got {setting!r}.")
        if not _json_safe(setting):
            raise ValueError(
                f"`sample_kwargs[{key!r}]` must be a number, string, boolean, None or a list/dict of them (it is"
                f" recorded with the run), got {type(setting).__name__} {setting!r}."
            )
        checked[key] = setting
    return checked


def _json_safe(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_json_safe(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    return False


def _check_oversampling(corrector: Corrector | None, cap: float) -> None:
    """Refuse a ``max_oversampling`` below what the selecting corrector's own settings draw per
    point kept (curation's ``num_candidates``, a verifier's ``1 / fraction`` or ``oversample``):
    pure arithmetic, known before anything trains."""
    from sclc_lightning.correctors.selection import SelectingCorrector

    if not isinstance(corrector, SelectingCorrector):
        return
    keep = 10**6
    ratio = corrector.draws(keep) / keep
    if ratio > cap:
        name = corrector.describe().get("name")
        raise ValueError(
            f"`max_oversampling` ({cap:g}) is below the {ratio:g} points corrector {name!r} draws per point kept by its"
            f" own settings, so generation 1 could never be made; raise `max_oversampling` to at least {ratio:g} or"
            " ask the corrector for fewer draws."
        )


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
    #: ``None`` until a fit resolves it (:func:`~sclc_lightning.seeding.run_seed`) when not given.
    seed: int | None
    sample_batch_size: int
    data_field: FieldKey
    condition_field: FieldKey
    shard_rows: int
    start_from: str = "previous"
    sampler: SamplerSpec = "sample"
    fields: dict[FieldKey, FieldRule] = field(default_factory=dict)
    dry_run: bool = True
    accept_other_real_data: bool = False
    accept_edited_code: bool = False
    sample_kwargs: dict[str, Any] = field(default_factory=dict)
    max_oversampling: float = 100.0
    #: :math:`\lambda_1, \dots, \lambda_T` when ``synthetic_fraction`` is a schedule (then
    #: :attr:`synthetic_fraction` is the largest), with the schedule as given, for the record.
    schedule: tuple[float, ...] | None = None
    schedule_description: Any = None
    model_corrector: ModelCorrector | None = None

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> LoopConfig:
        """Validate the arguments of :class:`~sclc_lightning.SelfConsumingLoop` (which holds
        their defaults); messages name the argument and the value.

        Raises:
            ValueError: an argument is out of range.
            TypeError: an unknown argument.
        """
        # NumPy scalars are numbers, recorded as Python ones (a checkpoint holding one would not
        # load with weights_only=True); inside the kwargs mappings and schedule lists too
        given = {name: plain(value) for name, value in arguments.items()}
        for name in ("mode_kwargs", "corrector_kwargs", "model_corrector_kwargs", "fields"):
            value = given.get(name)
            if value is not None and not isinstance(value, Mapping):
                raise ValueError(
                    f"`{name}` must be a mapping of names to values (a dict; in YAML a block of `key: value`"
                    f" lines), got {value!r}."
                )
        synthetic_fraction, generations = given.pop("synthetic_fraction"), given.pop("generations")
        images_per_generation, initial_images = given.pop("images_per_generation"), given.pop("initial_images")
        mode, mode_kwargs, seed = given.pop("mode"), given.pop("mode_kwargs"), given.pop("seed")
        corrector, corrector_kwargs = given.pop("corrector"), given.pop("corrector_kwargs")
        sample_batch_size, shard_rows = given.pop("sample_batch_size"), given.pop("shard_rows")
        start_from = given.pop("start_from", "previous")
        sampler, fields, dry_run = given.pop("sampler", "sample"), given.pop("fields", None), given.pop("dry_run", True)
        accept_other_real_data = given.pop("accept_other_real_data", False)
        accept_edited_code = given.pop("accept_edited_code", False)
        sample_kwargs = _check_sample_kwargs(given.pop("sample_kwargs", None))
        max_oversampling = given.pop("max_oversampling", 100.0)
        model_corrector = make_model_corrector(
            given.pop("model_corrector", None), given.pop("model_corrector_kwargs", None)
        )
        output_dir, data_field, condition_field = (
            given.pop(k) for k in ("output_dir", "data_field", "condition_field")
        )
        if given:
            raise TypeError(f"SelfConsumingLoop got unexpected arguments {sorted(given)}.")
        for name, key in (("data_field", data_field), ("condition_field", condition_field)):
            if not (key is None or is_integer(key) or isinstance(key, str)):
                raise ValueError(
                    f"`{name}` must be None, a position (an integer) or a key (text) of the items, got {key!r}."
                )
        data_field = int(data_field) if is_integer(data_field) else data_field
        condition_field = int(condition_field) if is_integer(condition_field) else condition_field
        if output_dir is not None and not isinstance(output_dir, (str, os.PathLike)):
            raise ValueError(f"`output_dir` must be a path (text) or None, got {output_dir!r}.")
        if output_dir is not None and not str(output_dir).strip():
            raise ValueError(
                "`output_dir` is empty (an unset variable?): give a folder, or None for <log_dir>/synthetic."
            )
        if not _is_int(generations) or generations < 0:
            raise ValueError(f"`generations` must be an integer >= 0, got {generations!r}.")
        schedule: tuple[float, ...] | None = None
        described: Any = None
        if isinstance(synthetic_fraction, bool) or not isinstance(synthetic_fraction, (int, float)):
            text = isinstance(synthetic_fraction, str) and ":" not in synthetic_fraction
            if synthetic_fraction is None or isinstance(synthetic_fraction, bool) or text:
                raise ValueError(
                    "`synthetic_fraction` must be a finite number >= 0 or a schedule (a list per generation, a"
                    f" function of the generation, {{'name': 'linear', ...}}), got {synthetic_fraction!r}."
                )
            schedule = resolve_schedule(synthetic_fraction, int(generations))
            # an import path records the identity of the code it names
            given = synthetic_fraction
            described = describe_callable(given) if isinstance(given, str) else jsonable(given)
            synthetic_fraction = max(schedule, default=0.0)
        elif not math.isfinite(synthetic_fraction) or synthetic_fraction < 0:
            raise ValueError(f"`synthetic_fraction` must be a finite number >= 0, got {synthetic_fraction!r}.")
        _check_optional_count("images_per_generation", images_per_generation, 1)
        _check_optional_count("initial_images", initial_images, 0)
        if isinstance(mode, str):
            get_mixing_policy_class(mode)  # an unknown name is refused first, listing the known ones
        policy = make_mixing_policy(mode, mode_kwargs)
        if seed is not None and (not _is_int(seed) or seed < 0):
            raise ValueError(f"`seed` must be None (the run's seed) or an integer >= 0, got {seed!r}.")
        _check_count("sample_batch_size", sample_batch_size, 1)
        _check_count("shard_rows", shard_rows, 1)
        if start_from not in ("previous", "initial"):
            raise ValueError(f"`start_from` must be 'previous' or 'initial', got {start_from!r}.")
        if not (isinstance(sampler, str) and sampler) and not callable(sampler):
            raise ValueError(f"`sampler` must be a method name, an import path or a callable, got {sampler!r}.")
        flags = (
            ("dry_run", dry_run),
            ("accept_other_real_data", accept_other_real_data),
            ("accept_edited_code", accept_edited_code),
        )
        for name, flag in flags:
            if not isinstance(flag, bool):
                raise ValueError(f"`{name}` must be True or False, got {flag!r}.")
        if (
            isinstance(max_oversampling, bool)
            or not is_number(max_oversampling)
            or not 1 <= max_oversampling < math.inf
        ):
            raise ValueError(f"`max_oversampling` must be a finite number >= 1, got {max_oversampling!r}.")
        policy.check_loop(min(schedule) if schedule else float(synthetic_fraction), int(generations))
        corrector = make_corrector(corrector, corrector_kwargs)
        _check_oversampling(corrector, float(max_oversampling))
        for part in (policy, corrector, model_corrector):  # refused now, not when the fit has started
            if part is not None:
                part.settings()
        if initial_images == 0 and generations == 0:
            raise ValueError("`initial_images=0` skips generation 0, so `generations` must be >= 1, got 0.")
        return cls(
            synthetic_fraction=float(synthetic_fraction),
            schedule=schedule,
            schedule_description=described,
            generations=int(generations),
            images_per_generation=images_per_generation,
            initial_images=images_per_generation if initial_images is None else initial_images,
            policy=policy,
            corrector=corrector,
            output_dir=None if output_dir is None else Path(output_dir),
            seed=None if seed is None else int(seed),
            sample_batch_size=int(sample_batch_size),
            data_field=data_field,
            condition_field=condition_field,
            shard_rows=int(shard_rows),
            start_from=start_from,
            sampler=sampler,
            fields=resolve_rules(fields),
            dry_run=dry_run,
            accept_other_real_data=accept_other_real_data,
            accept_edited_code=accept_edited_code,
            sample_kwargs=sample_kwargs,
            max_oversampling=float(max_oversampling),
            model_corrector=model_corrector,
        )

    @property
    def run_seed(self) -> int:
        """The seed every draw comes from, once a fit has resolved it (``seed=None``: the run's).

        Raises:
            RuntimeError: asked before a fit started (the run's seed is not known yet).
        """
        if self.seed is None:
            raise RuntimeError("The run's seed is known once a fit has started (seed=None takes the run's seed).")
        return self.seed

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

    def fraction_at(self, generation: int) -> float:
        r""":math:`\lambda_t`: the synthetic fraction sampled for ``generation`` (>= 1)."""
        if self.schedule is None:
            return self.synthetic_fraction
        return self.schedule[generation - 1] if 1 <= generation <= len(self.schedule) else 0.0

    def num_synthetic(self, n: int, generation: int | None = None) -> int:
        r""":math:`\lfloor \lambda_t n \rfloor` points to sample for ``generation``, as the mixing
        policy asks (:meth:`~sclc_lightning.mixing.MixingPolicy.num_to_sample`); without a
        generation, :math:`\lfloor \lambda n \rfloor` with the largest :math:`\lambda_t`."""
        if generation is None:
            return num_synthetic(self.synthetic_fraction, n)
        return self.policy.num_to_sample(generation, num_synthetic(self.fraction_at(generation), n))


class LoopSettings:
    """Read-only views of a loop's settings (``self.config``), for users and other callbacks."""

    config: LoopConfig

    @property
    def run_seed(self) -> int:
        """The seed the run draws everything from: the given ``seed``, else ``seed_everything``'s
        or one drawn for the fit; a resume takes its checkpoint's. Known once fitting has
        started; evaluation callbacks without a seed of their own draw from it."""
        return self.config.run_seed

    @property
    def generations(self) -> int:
        return self.config.generations

    @property
    def synthetic_fraction(self) -> float:
        return self.config.synthetic_fraction

    @property
    def images_per_generation(self) -> int | None:
        return self.config.images_per_generation

    @property
    def initial_images(self) -> int | None:
        """Generation 0's budget (``images_per_generation`` unless set)."""
        return self.config.initial_images

    @property
    def seed(self) -> int | None:
        """The seed every draw comes from: the one given, else the run's (resolved when a fit
        starts: ``seed_everything``'s, else a fresh one; the checkpoint's on resume)."""
        return self.config.seed

    @property
    def mode(self) -> str:
        """The mixing policy's name (``"augment"``, ...)."""
        return str(self.config.policy.describe()["name"])

    @property
    def policy(self) -> MixingPolicy:
        """The mixing policy."""
        return self.config.policy

    @property
    def corrector(self) -> Corrector | None:
        """The configured corrector (``None``: the module's ``correct`` if any, else none)."""
        return self.config.corrector

    @property
    def num_epochs(self) -> int:
        """Lightning epochs the fit runs: one per trained generation."""
        return self.config.num_epochs

    def generation_of_epoch(self, epoch: int) -> int:
        """The generation trained in Lightning epoch ``epoch``."""
        return self.config.generation_of_epoch(epoch)

    @property
    def sample_kwargs(self) -> dict[str, Any]:
        """The settings passed to every sampler call (``{}``: none)."""
        return dict(self.config.sample_kwargs)
