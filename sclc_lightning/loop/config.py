r"""The loop's settings: validated once, frozen, and fingerprinted for resumes.

:class:`LoopConfig` holds what the user asked for;
:func:`sclc_lightning.loop.fingerprint.build` takes from it the part a resumed run must share with
the run it resumes (that module owns its format and says what differs; it reads this one, never
the other way round).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sclc_lightning._callables import describe_callable
from sclc_lightning._files import check_local_folder
from sclc_lightning._settings import jsonable
from sclc_lightning.correctors.base import Corrector, check_draws, make_corrector
from sclc_lightning.correctors.model import ModelCorrector, make_model_corrector
from sclc_lightning.items.codec import FieldKey
from sclc_lightning.items.contract import FieldRule, resolve_rules
from sclc_lightning.loop.settings import check_settings
from sclc_lightning.mixing.budget import num_synthetic
from sclc_lightning.mixing.policies import MixingPolicy, make_mixing_policy
from sclc_lightning.mixing.schedule import resolve_schedule
from sclc_lightning.sampler import SamplerSpec

__all__ = ["LoopConfig", "LoopSettings"]


def _check_oversampling(corrector: Corrector | None, cap: float) -> None:
    """Refuse a ``max_oversampling`` below what the selecting corrector's own settings draw per
    point kept (curation's ``num_candidates``, a verifier's ``1 / fraction`` or ``oversample``):
    pure arithmetic, known before anything trains."""
    if corrector is None:
        return
    keep = 10**6
    ratio = check_draws(corrector, keep) / keep
    if ratio > cap:
        name = corrector.describe().get("name")
        raise ValueError(
            f"`max_oversampling` ({cap:g}) is below the {ratio:g} points corrector {name!r} draws per point kept by its"
            f" own settings, so generation 1 could never be made; raise `max_oversampling` to at least {ratio:g} or"
            " ask the corrector for fewer draws."
        )


def _resolve_fraction(given: Any, generations: int) -> tuple[float, tuple[float, ...] | None, Any]:
    """λ (the largest of a schedule), the schedule's λₜ per generation (``None`` for a number) and
    the schedule as given, for the record (an import path records the identity of its code)."""
    if not isinstance(given, (int, float)):
        schedule = resolve_schedule(given, generations)
        described = describe_callable(given) if isinstance(given, str) else jsonable(given)
        return max(schedule, default=0.0), schedule, described
    return float(given), None, None


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
    passes_per_generation: float | None = None
    #: Whether ``initial_images`` was given (else generation 0 follows the other budget).
    initial_images_given: bool = False

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> LoopConfig:
        """The config of a :class:`~sclc_lightning.SelfConsumingLoop` given ``arguments``: each
        setting checked as :data:`~sclc_lightning.loop.settings.LOOP_SETTINGS` declares it (with
        its default when not given), then the checks that join several settings; messages name
        the argument and the value.

        Raises:
            ValueError: an argument is out of range.
            TypeError: an unknown argument.
        """
        values = check_settings(arguments)
        generations = values["generations"]
        fraction, schedule, described = _resolve_fraction(values["synthetic_fraction"], generations)
        policy = make_mixing_policy(values["mode"], values["mode_kwargs"])
        policy.check_loop(min(schedule) if schedule else fraction, generations)
        corrector = make_corrector(values["corrector"], values["corrector_kwargs"])
        _check_oversampling(corrector, values["max_oversampling"])
        model_corrector = make_model_corrector(values["model_corrector"], values["model_corrector_kwargs"])
        for part in (policy, corrector, model_corrector):  # refused now, not when the fit has started
            if part is not None:
                part.settings()
        initial_images = values["initial_images"]
        if initial_images == 0 and generations == 0:
            raise ValueError("`initial_images=0` skips generation 0, so `generations` must be >= 1, got 0.")
        if values["passes_per_generation"] is not None and values["images_per_generation"] is not None:
            raise ValueError(
                f"`passes_per_generation` ({values['passes_per_generation']!r}) and `images_per_generation`"
                f" ({values['images_per_generation']!r}) both set each generation's budget; give one of them."
            )
        output_dir = values["output_dir"]
        if output_dir is not None:
            check_local_folder(output_dir, "`output_dir`")
        return cls(
            synthetic_fraction=fraction,
            schedule=schedule,
            schedule_description=described,
            generations=generations,
            images_per_generation=values["images_per_generation"],
            initial_images=values["images_per_generation"] if initial_images is None else initial_images,
            initial_images_given=initial_images is not None,
            passes_per_generation=values["passes_per_generation"],
            policy=policy,
            corrector=corrector,
            output_dir=None if output_dir is None else Path(output_dir),
            seed=values["seed"],
            sample_batch_size=values["sample_batch_size"],
            data_field=values["data_field"],
            condition_field=values["condition_field"],
            shard_rows=values["shard_rows"],
            start_from=values["start_from"],
            sampler=values["sampler"],
            fields=resolve_rules(values["fields"]),
            dry_run=values["dry_run"],
            accept_other_real_data=values["accept_other_real_data"],
            accept_edited_code=values["accept_edited_code"],
            sample_kwargs=values["sample_kwargs"],
            max_oversampling=values["max_oversampling"],
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

    def budget(self, generation: int, size: int | None = None) -> int | None:
        """The training samples requested for ``generation`` (``None``: one pass); ``size``: the
        size of its mixed set, which ``passes_per_generation`` multiplies."""
        trains_zero = generation == 0 and self.first_generation == 0
        if trains_zero and (self.initial_images_given or self.passes_per_generation is None):
            return self.initial_images
        if self.passes_per_generation is not None:
            if size is None:
                raise ValueError("LoopConfig.budget: `passes_per_generation` needs the size of the mixed set.")
            return max(1, math.ceil(self.passes_per_generation * size - 1e-9))
        return self.images_per_generation

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
    def passes_per_generation(self) -> float | None:
        """Passes over each generation's mixed set (``None``: ``images_per_generation`` decides)."""
        return self.config.passes_per_generation

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
