r"""Mixing policies: which real and synthetic items form each generation's training set.

A policy turns (generation, size of the real pool, sizes of the synthetic sets on disk, seed)
into a :class:`GenerationPlan`, a pure function tested without a Trainer. The loop takes a
registered name (``mode="accumulate"``, with ``mode_kwargs``) or an instance. Built-ins, by what
generation :math:`t \ge 1` trains on:

- ``augment``: all real items and the latest synthetic set (Gillman et al.; Bertrand et al.);
- ``accumulate``: all real items and every synthetic set so far, ``max_synthetic`` capping the
  synthetic ones by uniform subsampling (Gerstgrasser et al.; with a fixed budget
  ``images_per_generation`` drawn from the whole pool, Kazdan et al.'s accumulate-subsample);
- ``replace``: the latest synthetic set only (Shumailov et al.; Bertrand et al. Prop. 1), with
  ``keep_real`` a random share of the real data too (Shumailov et al.'s 10% arm);
- ``fresh``: a new random subset of ``real_per_generation`` real items and the latest synthetic
  set (Alemohammad et al.).

Synthetic set ``g`` (``g >= 1``) is the one sampled from the model at the end of generation
``g - 1``. Generation 0 trains on real data under every built-in policy.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from sclc_lightning._checks import (
    COUNT,
    FRACTION,
    NON_NEGATIVE,
    Range,
    bounded,
    check_arguments,
    is_integer,
    plain_numbers,
)
from sclc_lightning._registry import Registry
from sclc_lightning._settings import declared_settings
from sclc_lightning.seeding import make_generator

__all__ = [
    "AccumulatePolicy",
    "AugmentPolicy",
    "FreshPolicy",
    "GenerationPlan",
    "MixingPolicy",
    "ReplacePolicy",
    "available_mixing_policies",
    "get_mixing_policy_class",
    "make_mixing_policy",
    "plan_generation",
    "register_mixing_policy",
]

P = TypeVar("P", bound="type[MixingPolicy]")


@dataclass(frozen=True)
class GenerationPlan:
    """The parts of one generation's training set.

    Attributes:
        generation: the generation that trains on this set.
        use_real: whether real items are part of the set at all.
        real_indices: indices into the real dataset, ``None`` for all of it.
        synthetic: ``(generation, rows)`` pairs: rows of that generation's synthetic set,
            ``None`` for all its rows.
        shares: the share of the fit each source carries, ``{-1: real share, g: share of
            synthetic generation g}`` (normalised by the loop), delivered as item weights or
            sampling probabilities (:mod:`~sclc_lightning.mixing.weighting`); ``None``: every
            item counts the same.

    Examples:
        >>> plan = GenerationPlan(3, use_real=True, synthetic=((2, None), (3, None)))
        >>> plan.use_real, [generation for generation, _ in plan.synthetic]
        (True, [2, 3])
    """

    generation: int
    use_real: bool
    real_indices: Tensor | None = None
    synthetic: tuple[tuple[int, Tensor | None], ...] = field(default_factory=tuple)
    shares: Mapping[int, float] | None = None

    def num_real(self, real_size: int) -> int:
        """Number of real items in the set."""
        if not self.use_real:
            return 0
        return real_size if self.real_indices is None else int(self.real_indices.numel())

    def num_synthetic(self, synthetic_counts: Mapping[int, int]) -> int:
        """Number of synthetic items in the set."""
        return sum(synthetic_counts[g] if rows is None else int(rows.numel()) for g, rows in self.synthetic)

    @property
    def is_all_real(self) -> bool:
        """Whether the set is exactly the whole real dataset, unweighted."""
        return self.use_real and self.real_indices is None and not self.synthetic and self.shares is None

    def sources(self) -> list[int]:
        """The sources of the set in order: ``-1`` (the real data) when used, then the synthetic
        generations."""
        return ([-1] if self.use_real else []) + [g for g, _ in self.synthetic]

    def sizes(self, real_size: int, synthetic_counts: Mapping[int, int]) -> dict[int, int]:
        """The number of items of each source in the set."""
        sizes = {-1: self.num_real(real_size)} if self.use_real else {}
        for g, rows in self.synthetic:
            sizes[g] = synthetic_counts[g] if rows is None else int(rows.numel())
        return sizes

    def weighted(
        self, real_weight: float | None, real_size: int, synthetic_counts: Mapping[int, int]
    ) -> GenerationPlan:
        """This plan with the real data carrying the share ``real_weight`` of the fit and the
        synthetic sets the rest, in proportion to their sizes (He, Xu & Cheng 2025's :math:`w`
        and :math:`1 - w`); unchanged when ``real_weight`` is ``None`` or the set has no
        synthetic items.

        Examples:
            >>> plan = GenerationPlan(2, True, None, ((1, None), (2, None)))
            >>> plan.weighted(0.6, 10, {1: 5, 2: 15}).shares
            {-1: 0.6, 1: 0.1, 2: 0.3}
        """
        sizes = self.sizes(real_size, synthetic_counts)
        synthetic = sum(size for source, size in sizes.items() if source >= 0)
        if real_weight is None or not synthetic or not self.use_real:
            return self
        shares = {-1: float(real_weight)}
        shares.update({g: (1 - float(real_weight)) * sizes[g] / synthetic for g, _ in self.synthetic})
        return replace(self, shares=shares)


def _check_count(cls: type[MixingPolicy], name: str, value: Any) -> None:
    """``value`` is ``None`` or an integer in the range ``cls`` declares for ``name``."""
    minimum = cls.ranges[name].minimum or 0
    if value is not None and (not is_integer(value) or value < minimum):
        raise ValueError(f"`{name}` must be None or an integer >= {minimum:g}, got {value!r}.")


class MixingPolicy(abc.ABC):
    """Base class of mixing policies. Override :meth:`plan`; the checks are optional.

    Register a subclass with :func:`register_mixing_policy` to name it in YAML
    (``loop.mode: my_policy`` and ``loop.mode_kwargs: {...}``). Its settings are the constructor
    arguments kept as attributes of the same name (see :meth:`settings`); a resumed run must have
    the same ones.

    Examples:
        >>> @register_mixing_policy("doc_latest_two")
        ... class LatestTwo(MixingPolicy):
        ...     def plan(self, generation, real_size, synthetic_counts, seed):
        ...         sets = [g for g in (generation - 1, generation) if synthetic_counts.get(g, 0) > 0]
        ...         return GenerationPlan(generation, True, None, tuple((g, None) for g in sets))
        >>> [g for g, _ in LatestTwo().plan(3, 10, {1: 5, 2: 5, 3: 5}, seed=0).synthetic]
        [2, 3]
    """

    name: ClassVar[str] = ""
    #: Constructor arguments that decide the plans (recorded; a resume must not change them);
    #: ``None``: every argument not :attr:`operational`.
    deciding: ClassVar[tuple[str, ...] | None] = None
    #: Constructor arguments that do not change the plans (never recorded).
    operational: ClassVar[tuple[str, ...]] = ()
    #: Where its numeric constructor arguments must lie (``check_arguments(Class, locals())``
    #: checks them; the docs' settings tables show them).
    ranges: ClassVar[Mapping[str, Range]] = bounded()

    @abc.abstractmethod
    def plan(self, generation: int, real_size: int, synthetic_counts: Mapping[int, int], seed: int) -> GenerationPlan:
        """The training set of ``generation``.

        Args:
            generation: the generation about to train (``0`` trains before any synthetic data).
            real_size: the size of the real dataset.
            synthetic_counts: the size of every synthetic set on disk, by generation (sets of
                generations ``<= generation`` only).
            seed: the loop's seed; draw randomness from
                ``make_generator(seed, "mix", generation)`` so that a resumed run draws the same.
        """

    def n(self, real_size: int | None) -> int | None:
        r"""The :math:`n` of :math:`\lfloor \lambda n \rfloor`: the real items a generation sees
        (default: the whole real dataset; ``None`` while it is unknown)."""
        return real_size

    def num_to_sample(self, generation: int, proposed: int) -> int:
        r"""How many synthetic points the loop samples for ``generation``: by default
        ``proposed``, :math:`\lfloor \lambda_t n \rfloor` (a schedule's :math:`\lambda_t`). A
        policy that uses fewer of them says so here, and the loop samples only those."""
        return proposed

    def check_loop(self, synthetic_fraction: float, generations: int) -> None:  # noqa: B027
        r"""Refuse loop settings this policy cannot train with (called at construction);
        ``synthetic_fraction`` is the smallest :math:`\lambda_t` of a schedule."""

    def check_real_size(self, real_size: int) -> None:  # noqa: B027
        """Refuse a real dataset this policy cannot use (called when fitting starts)."""

    def settings(self) -> dict[str, Any]:
        """The settings that decide the plans, as JSON-safe values: the :attr:`deciding`
        constructor arguments (see :meth:`Corrector.settings
        <sclc_lightning.correctors.base.Corrector.settings>`).

        Raises:
            TypeError: an argument declared neither way, or a deciding one kept under another name.
        """
        return declared_settings(self, self.deciding, self.operational)

    def describe(self) -> dict[str, Any]:
        """The name and :meth:`settings`."""
        return {"name": self.name or type(self).__name__, **self.settings()}

    def _without_defaults(self, **defaults: Any) -> dict[str, Any]:
        """:meth:`settings` without the arguments added after runs were recorded, while they
        have their defaults (a run saved before them resumes with the same fingerprint)."""
        deciding = self.deciding
        if deciding is not None:  # a subclass declared before them: they decide the plans all the same
            deciding = (*deciding, *(k for k in defaults if k not in deciding and k not in self.operational))
        settings = declared_settings(self, deciding, self.operational)
        return {k: v for k, v in settings.items() if k not in defaults or v != defaults[k]}

    @staticmethod
    def latest(generation: int, synthetic_counts: Mapping[int, int]) -> tuple[tuple[int, Tensor | None], ...]:
        """The synthetic set of ``generation`` whole, when it has items."""
        return ((generation, None),) if synthetic_counts.get(generation, 0) > 0 else ()


_REGISTRY: Registry[MixingPolicy] = Registry("mixing policy", MixingPolicy, "mode", package="sclc_lightning.mixing")


def register_mixing_policy(name: str) -> Callable[[P], P]:
    """Class decorator registering a :class:`MixingPolicy` under ``name`` (the loop's ``mode``).

    Raises:
        ValueError: ``name`` is already registered to another class.

    Examples:
        >>> @register_mixing_policy("real_only")
        ... class RealOnly(MixingPolicy):
        ...     def plan(self, generation, real_size, synthetic_counts, seed):
        ...         return GenerationPlan(generation, True)
        >>> "real_only" in available_mixing_policies()
        True
    """
    return _REGISTRY.register(name)


def available_mixing_policies() -> list[str]:
    """Registered mixing policy names.

    Examples:
        >>> [name for name in available_mixing_policies() if name in ("accumulate", "replace")]
        ['accumulate', 'replace']
    """
    return _REGISTRY.names()


def get_mixing_policy_class(name: str) -> type[MixingPolicy]:
    """The class registered as ``name``."""
    return _REGISTRY.get(name)


def make_mixing_policy(mode: MixingPolicy | str, kwargs: Mapping[str, Any] | None = None) -> MixingPolicy:
    """Resolve the loop's ``mode`` and ``mode_kwargs`` to a policy instance.

    Raises:
        ValueError: an unknown name, or ``kwargs`` the policy does not take.
    """
    return _REGISTRY.make(mode, kwargs)


def plan_generation(
    mode: MixingPolicy | str,
    generation: int,
    real_size: int,
    synthetic_counts: Mapping[int, int],
    seed: int,
    **mode_kwargs: Any,
) -> GenerationPlan:
    """The training set of ``generation`` under ``mode`` (a policy or a registered name with its
    ``mode_kwargs``).

    Examples:
        >>> plan = plan_generation("accumulate", 2, 10, {1: 5, 2: 5}, seed=0)
        >>> [g for g, _ in plan.synthetic]
        [1, 2]
    """
    return make_mixing_policy(mode, mode_kwargs).plan(generation, real_size, synthetic_counts, seed)


@register_mixing_policy("augment")
@plain_numbers
class AugmentPolicy(MixingPolicy):
    """All real items and the latest synthetic set (Gillman et al.; Bertrand et al.).

    Args:
        real_weight: the share :math:`w` of the fit that the real items carry, the synthetic
            items sharing :math:`1 - w` in proportion to their sets' sizes (He, Xu & Cheng
            2025), as item weights or sampling probabilities
            (:mod:`~sclc_lightning.mixing.weighting`); ``None``: every item counts the same.
    """

    deciding = ("real_weight",)
    ranges = bounded(real_weight=FRACTION)

    def __init__(self, real_weight: float | None = None) -> None:
        check_arguments(AugmentPolicy, locals())
        self.real_weight = None if real_weight is None else float(real_weight)

    def settings(self) -> dict[str, Any]:
        return self._without_defaults(real_weight=None)

    def plan(self, generation: int, real_size: int, synthetic_counts: Mapping[int, int], seed: int) -> GenerationPlan:
        if generation == 0:
            return GenerationPlan(0, True)
        plan = GenerationPlan(generation, True, None, self.latest(generation, synthetic_counts))
        return plan.weighted(self.real_weight, real_size, synthetic_counts)


@register_mixing_policy("accumulate")
@plain_numbers
class AccumulatePolicy(MixingPolicy):
    """All real items and every synthetic set so far (Gerstgrasser et al. 2024).

    Args:
        max_synthetic: cap the synthetic pool at this size by a uniform random subset of its
            items, drawn anew each generation, the real items all kept; ``None`` keeps
            everything. (Kazdan et al. 2024's "accumulate-subsample" draws a fixed-size set from
            the whole pool, real items included: ``accumulate`` with ``images_per_generation``
            that size.)
        real_weight: the share :math:`w` of the fit that the real items carry, the synthetic
            items sharing :math:`1 - w` in proportion to their sets' sizes (He, Xu & Cheng
            2025), as item weights or sampling probabilities
            (:mod:`~sclc_lightning.mixing.weighting`); ``None``: every item counts the same.
    """

    deciding = ("max_synthetic", "real_weight")
    ranges = bounded(max_synthetic=NON_NEGATIVE, real_weight=FRACTION)

    def __init__(self, max_synthetic: int | None = None, real_weight: float | None = None) -> None:
        _check_count(AccumulatePolicy, "max_synthetic", max_synthetic)
        check_arguments(AccumulatePolicy, {"real_weight": real_weight})
        self.max_synthetic = max_synthetic
        self.real_weight = None if real_weight is None else float(real_weight)

    def settings(self) -> dict[str, Any]:
        return self._without_defaults(real_weight=None)

    def plan(self, generation: int, real_size: int, synthetic_counts: Mapping[int, int], seed: int) -> GenerationPlan:
        if generation == 0:
            return GenerationPlan(0, True)
        parts: list[tuple[int, Tensor | None]] = [
            (g, None) for g in range(1, generation + 1) if synthetic_counts.get(g, 0) > 0
        ]
        total = sum(synthetic_counts[g] for g, _ in parts)
        if self.max_synthetic is not None and total > self.max_synthetic:
            keep = torch.randperm(total, generator=make_generator(seed, "mix", generation))
            keep = keep[: self.max_synthetic].sort().values
            capped: list[tuple[int, Tensor | None]] = []
            offset = 0
            for g, _ in parts:
                count = synthetic_counts[g]
                inside = keep[(keep >= offset) & (keep < offset + count)] - offset
                if inside.numel():
                    capped.append((g, inside))
                offset += count
            parts = capped
        plan = GenerationPlan(generation, True, None, tuple(parts))
        return plan.weighted(self.real_weight, real_size, synthetic_counts)


@register_mixing_policy("replace")
@plain_numbers
class ReplacePolicy(MixingPolicy):
    """The latest synthetic set only: fully synthetic retraining (Shumailov et al.; Bertrand
    et al. Prop. 1). Generation 0 trains on the real data.

    Args:
        keep_real: the share of the real dataset kept in every later generation's training set,
            a new uniform random subset of ``round(keep_real * n)`` items each generation
            (Shumailov et al.'s "10% of the original data preserved": ``keep_real=0.1``).
        real_weight: the share :math:`w` of the fit that the kept real items carry, the synthetic
            items sharing :math:`1 - w` in proportion to their sets' sizes (He, Xu & Cheng
            2025), as item weights or sampling probabilities
            (:mod:`~sclc_lightning.mixing.weighting`); ``None``: every item counts the same.
    """

    deciding = ("keep_real", "real_weight")
    ranges = bounded(keep_real=FRACTION, real_weight=FRACTION)

    def __init__(self, keep_real: float = 0.0, real_weight: float | None = None) -> None:
        check_arguments(ReplacePolicy, locals())
        if real_weight is not None and not keep_real:
            raise ValueError(
                f"`real_weight` ({real_weight!r}) weighs the real items that mode 'replace' keeps; set"
                " `keep_real` > 0 too (with keep_real=0 later generations have no real items)."
            )
        self.keep_real = float(keep_real)
        self.real_weight = None if real_weight is None else float(real_weight)

    def settings(self) -> dict[str, Any]:
        # Runs saved before `keep_real` existed recorded no settings: the defaults are left out.
        return self._without_defaults(keep_real=0.0, real_weight=None)

    def check_loop(self, synthetic_fraction: float, generations: int) -> None:
        if synthetic_fraction == 0 and generations > 0:
            raise ValueError(
                "`synthetic_fraction` must be > 0 in mode 'replace' (later generations train on"
                f" synthetic data only), got {synthetic_fraction!r}."
            )

    def check_real_size(self, real_size: int) -> None:
        if self.real_weight is not None and round(self.keep_real * real_size) == 0:
            raise ValueError(
                f"`real_weight` ({self.real_weight!r}) weighs the real items that mode 'replace' keeps, and"
                f" `keep_real` {self.keep_real!r} of {real_size} real items keeps none; raise `keep_real` to at"
                f" least {1 / real_size:.3g}."
            )

    def plan(self, generation: int, real_size: int, synthetic_counts: Mapping[int, int], seed: int) -> GenerationPlan:
        if generation == 0:
            return GenerationPlan(0, True)
        kept = round(self.keep_real * real_size)
        if kept == 0:
            return GenerationPlan(generation, False, None, self.latest(generation, synthetic_counts))
        subset = torch.randperm(real_size, generator=make_generator(seed, "mix", generation))[:kept]
        plan = GenerationPlan(generation, True, subset.sort().values, self.latest(generation, synthetic_counts))
        return plan.weighted(self.real_weight, real_size, synthetic_counts)


@register_mixing_policy("fresh")
@plain_numbers
class FreshPolicy(MixingPolicy):
    r"""A new uniform random subset of the real pool each generation, and the latest synthetic
    set (Alemohammad et al. 2023). :math:`n` is the subset size.

    Args:
        real_per_generation: the size of each generation's real subset (required).
        disjoint: never show a real item twice: generation :math:`t` takes items
            :math:`[tn, (t+1)n)` of one random permutation of the pool, so every generation's
            real items are new (He, Xu & Cheng 2025's setting). The pool must hold
            :math:`n (T + 1)` items for generations :math:`0..T`. ``False``: each generation
            draws its subset anew from the whole pool.
        real_weight: the share :math:`w` of the fit that the real items carry, the synthetic
            items sharing :math:`1 - w` in proportion to their sets' sizes (He, Xu & Cheng
            2025), as item weights or sampling probabilities
            (:mod:`~sclc_lightning.mixing.weighting`); ``None``: every item counts the same.
    """

    deciding = ("real_per_generation", "disjoint", "real_weight")
    ranges = bounded(real_per_generation=COUNT, real_weight=FRACTION)

    def __init__(
        self, real_per_generation: int | None = None, disjoint: bool = False, real_weight: float | None = None
    ) -> None:
        if real_per_generation is None:
            raise ValueError("`real_per_generation` is required in mode 'fresh', got None.")
        _check_count(FreshPolicy, "real_per_generation", real_per_generation)
        check_arguments(FreshPolicy, {"disjoint": disjoint, "real_weight": real_weight})
        self.real_per_generation = real_per_generation
        self.disjoint = disjoint
        self.real_weight = None if real_weight is None else float(real_weight)
        self._generations: int | None = None

    def settings(self) -> dict[str, Any]:
        return self._without_defaults(disjoint=False, real_weight=None)

    def n(self, real_size: int | None) -> int | None:
        return self.real_per_generation

    def check_loop(self, synthetic_fraction: float, generations: int) -> None:
        self._generations = generations

    def _needed(self, generations: int) -> int:
        return self.real_per_generation * (generations + 1) if self.disjoint else self.real_per_generation

    def check_real_size(self, real_size: int) -> None:
        if self.real_per_generation > real_size:
            raise ValueError(
                f"`real_per_generation` must be at most the size of the real pool ({real_size}),"
                f" got {self.real_per_generation}."
            )
        if self.disjoint and self._generations is not None and self._needed(self._generations) > real_size:
            raise ValueError(
                f"mode 'fresh' with `disjoint=True` shows each real item once: generations 0..{self._generations}"
                f" need {self.real_per_generation} x {self._generations + 1} = {self._needed(self._generations)}"
                f" real items, and the pool has {real_size}. Use a larger pool, fewer generations or a smaller"
                " `real_per_generation`."
            )

    def plan(self, generation: int, real_size: int, synthetic_counts: Mapping[int, int], seed: int) -> GenerationPlan:
        if not 0 < self.real_per_generation <= real_size:
            raise ValueError(
                f"`real_per_generation` must be in [1, {real_size}] (the size of the real pool),"
                f" got {self.real_per_generation!r}."
            )
        synthetic = self.latest(generation, synthetic_counts) if generation else ()
        if self.disjoint:
            if self._needed(generation) > real_size:
                raise ValueError(
                    f"mode 'fresh' with `disjoint=True`: generation {generation} needs real items"
                    f" [{generation * self.real_per_generation}, {self._needed(generation)}) of a pool of {real_size}."
                )
            pool = torch.randperm(real_size, generator=make_generator(seed, "mix", 0, part=1))
            subset = pool[generation * self.real_per_generation : self._needed(generation)]
        else:
            subset = torch.randperm(real_size, generator=make_generator(seed, "mix", generation))
            subset = subset[: self.real_per_generation]
        plan = GenerationPlan(generation, True, subset, synthetic)
        return plan.weighted(self.real_weight, real_size, synthetic_counts)
