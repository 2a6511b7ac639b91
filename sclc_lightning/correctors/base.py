r"""The corrector extension point and its registry.

A corrector realises the correction function :math:`\pi_\gamma` of Gillman et al. (2024):
it receives the synthetic points of one generation and returns corrected points, pulled toward
the data distribution with strength :math:`\gamma` (``strength``).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import Tensor

from sclc_lightning._checks import Range, bounded, check_number
from sclc_lightning._registry import Registry
from sclc_lightning._settings import declared_settings
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.items.real import RealData

__all__ = [
    "CAPABILITIES",
    "Corrector",
    "available_correctors",
    "check_draws",
    "get_corrector_class",
    "make_corrector",
    "register_corrector",
]

#: What a corrector may declare it handles (:attr:`Corrector.supports`).
CAPABILITIES = {
    "continuous": "floating-point data",
    "discrete": "integer or boolean data (token ids, codes)",
    "conditional": "items with a condition field",
    "generated_fields": "fields the model generates with the data (it keeps or swaps whole items, never moves data)",
}

C = TypeVar("C", bound="type[Corrector]")


def _check_strength(strength: float) -> float:
    bounds = Corrector.ranges["strength"]
    return float(check_number("strength", strength, minimum=bounds.minimum, infinite=bounds.infinite))


class Corrector(abc.ABC):
    r"""Base class of correctors. Override :meth:`correct`; :meth:`setup` is optional.

    Args:
        strength: the correction strength :math:`\gamma \ge 0`; ``0`` leaves points unchanged
            and ``float("inf")`` applies the full correction.

    Examples:
        >>> @register_corrector("shrink")
        ... class Shrink(Corrector):
        ...     def correct(self, batch, *, generation, generator, reference):
        ...         return batch.data / (1 + self.strength)
    """

    name: ClassVar[str] = ""
    #: What it handles, among :data:`CAPABILITIES`; the loop refuses other data at set-up
    #: (:meth:`check_items`). A corrector that moves the data must not declare
    #: ``"generated_fields"``: the fields generated with the old data would no longer match.
    supports: ClassVar[frozenset[str]] = frozenset({"continuous", "discrete", "conditional"})
    #: Whether ``strength`` (γ) changes what the corrector does (``False``: the identity, γ = 0
    #: whatever it is given; reports label such an arm "γ=0").
    applies_strength: ClassVar[bool] = True
    #: Constructor arguments that decide the corrected points: recorded in the manifest and the
    #: checkpoint, and a resumed run must not change them. ``None`` (the default, for brevity in
    #: user classes): every argument but ``strength`` and :attr:`operational`. Built-in
    #: correctors declare theirs.
    deciding: ClassVar[tuple[str, ...] | None] = None
    #: Constructor arguments that do not change the corrected points (workers, timeouts, …):
    #: left out of :meth:`settings`, so a resumed run may change them.
    operational: ClassVar[tuple[str, ...]] = ()
    #: Where its numeric constructor arguments must lie, checked by
    #: ``check_arguments(Class, locals())`` and shown in the docs' settings tables; a subclass
    #: declares its own arguments' ranges, and ``strength``'s is declared here once.
    ranges: ClassVar[Mapping[str, Range]] = bounded(strength=Range(minimum=0, infinite=True))
    #: Whether it keeps some of the points drawn for it (a
    #: :class:`~sclc_lightning.correctors.SelectingCorrector`: the loop draws in rounds until
    #: enough are kept) rather than turning each point into one corrected point.
    selects: ClassVar[bool] = False
    #: Whether it corrects each point on its own (what it makes of a point depends on that point,
    #: the real data and the generator only, never on the other generated points): then, with
    #: several processes, every rank corrects and writes its own share of the generation and no
    #: rank gathers it (:mod:`sclc_lightning.loop.shares`); each rank's ``generator`` is its own.
    #: ``False`` (the default, always right): global rank zero gathers the whole generation and
    #: corrects it alone (optimal transport, a top fraction, centres fitted on the samples).
    pointwise: bool = False
    #: Set by the loop: whether :meth:`progress` bars are shown (rank zero, progress bar on).
    show_progress: bool = False

    def __init__(self, strength: float = 1.0) -> None:
        self.strength = _check_strength(strength)

    def draws(self, keep: int) -> int:
        """How many points the loop draws for it to keep ``keep`` (a corrector that transforms
        each point: as many); an integer ``>= keep`` (:func:`check_draws`)."""
        return keep

    def attach(self, module: Any) -> None:  # noqa: B027
        """Called by the loop at set-up with the LightningModule being trained (a corrector that
        scores points with the current model keeps it); by default nothing."""

    def report(self, **values: float) -> None:
        """Record what this correction measured (``reward_mean=...``): the loop logs each value with
        the generation and keeps it in the manifest. Called from :meth:`correct`."""
        self.__dict__.setdefault("_reported", {}).update({k: float(v) for k, v in values.items()})

    def take_report(self) -> dict[str, float]:
        """What :meth:`report` recorded since the last call (the loop reads it after each correction)."""
        reported: dict[str, float] = self.__dict__.pop("_reported", {})
        return reported

    def progress(self, total: int, desc: str) -> Any:
        """A tqdm bar for long corrections (one update per item), shown when the trainer shows
        its progress bar; use it as a context manager and call ``update(n)``."""
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, disable=not self.show_progress, leave=False)

    @property
    def blend(self) -> float:
        r"""Weight :math:`\gamma / (1 + \gamma)` of the corrected target in a convex blend."""
        return 1.0 if math.isinf(self.strength) else self.strength / (1.0 + self.strength)

    def mix(self, points: Tensor, targets: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""Move ``points`` toward ``targets`` with strength :math:`\gamma`.

        Floats: :math:`y/(1+\gamma) + \gamma\, t/(1+\gamma)`, exact for :math:`\gamma = \infty`.
        Tokens (integer or boolean data), where averaging has no meaning: each position takes the
        target's token with probability :math:`\gamma/(1+\gamma)` (drawn from ``generator``), so
        the expected Hamming distance to the target shrinks by :math:`1/(1+\gamma)`, as the
        Euclidean distance does for floats.

        Raises:
            ValueError: token data with a finite, non-zero strength and no ``generator``, or
                targets of another dtype than the points (floats of any precision are blended in
                the points' dtype).
        """
        if points.is_floating_point() and targets.is_floating_point():
            targets = targets.to(points.dtype)  # computed in float64 (centres): a blend, then the data's
        elif targets.dtype != points.dtype:
            raise ValueError(
                f"{type(self).__name__}: targets are {targets.dtype}, the points {points.dtype}; they must match."
            )
        if math.isinf(self.strength):
            return targets.clone()
        if points.is_floating_point():
            return (points + self.strength * targets) / (1.0 + self.strength)
        if self.strength == 0:
            return points.clone()
        if generator is None:
            raise ValueError(f"{type(self).__name__}: mixing tokens at strength {self.strength} needs a generator.")
        take = torch.rand(points.shape, generator=generator, dtype=torch.float64) < self.blend
        return torch.where(take, targets, points)

    def check_items(self, reference: RealData) -> None:
        """Refuse, at set-up, items this corrector cannot correct (:attr:`supports`); override to
        check more, calling ``super().check_items(reference)``.

        Raises:
            ValueError: naming the corrector and what it does not handle.
        """
        codec = reference.codec
        needed = ["discrete" if codec.is_discrete else "continuous"]
        if codec.condition_key is not None:
            needed.append("conditional")
        if codec.generated_keys:
            needed.append("generated_fields")
        missing = [need for need in needed if need not in self.supports]
        if missing:
            what = {
                "discrete": f"the data field {codec.data_key!r} is {codec.data_dtype} (tokens)",
                "continuous": f"the data field {codec.data_key!r} is {codec.data_dtype}",
                "conditional": f"the items have a condition field ({codec.condition_key!r})",
                "generated_fields": f"fields {list(codec.generated_keys)!r} are generated with the data",
            }
            name = self.name or type(self).__name__
            handled = ", ".join(CAPABILITIES[c] for c in sorted(self.supports)) or "nothing"
            raise ValueError(
                f"Corrector {name!r} cannot correct these items: {'; '.join(what[m] for m in missing)}. It handles"
                f" {handled}. Choose another corrector (docs/correctors.md lists what each handles)."
            )

    def check_on_real(self, batch: SyntheticBatch) -> str:
        """Run what this corrector scores with on real items (``batch``: some of them, as the
        dry run takes them before generation 0; the untrained model's samples say nothing) and
        refuse what cannot work: scores of the wrong shape or not finite, a verifier that rejects
        every real point. Returns a short report for the log (``""``: nothing to say). Override
        for correctors with scores, rewards or verifiers.

        Raises:
            ValueError: naming the corrector, the argument and what it gave.
        """
        return ""

    def setup(self, reference: RealData, generator: torch.Generator) -> None:  # noqa: B027
        """Prepare once per run, before the first correction (e.g. fit cluster centres).

        Called again after a resume, with a generator seeded the same way.
        """

    @abc.abstractmethod
    def correct(
        self, batch: SyntheticBatch, *, generation: int, generator: torch.Generator, reference: RealData
    ) -> SyntheticBatch | Tensor:
        """Correct one generation's synthetic points.

        Args:
            batch: the synthetic points (``batch.data``, shape ``(num_samples, ...)``), the real
                items they take their other fields from and their conditions.
            generation: the generation that will train on the corrected points (``>= 1``).
            generator: a CPU generator seeded from (seed, generation); use it for all randomness.
            reference: the real training data, for reference points.

        Returns:
            A batch of the same size: a :class:`SyntheticBatch` (when rows were re-chosen or
            replaced by real items) or just the corrected data tensor (same order as ``batch``).
        """

    def settings(self) -> dict[str, Any]:
        """Every setting that decides the corrected points, as JSON-safe values: the
        :attr:`deciding` constructor arguments, read from the attributes of the same name.

        Raises:
            TypeError: a constructor argument is declared neither :attr:`deciding` nor
                :attr:`operational`, or a deciding one is kept under another name (override this
                method then, returning it): it would leave the resume fingerprint.
        """
        return declared_settings(self, self.deciding, self.operational, exclude=("strength",))

    def describe(self) -> dict[str, Any]:
        """The name, the strength and :meth:`settings`, recorded in the manifest and checkpoints;
        a resumed run must describe its corrector identically.

        Examples:
            >>> from sclc_lightning.correctors import KMeansCorrector
            >>> KMeansCorrector(num_clusters=8).describe()
            {'name': 'kmeans', 'strength': inf, 'num_clusters': 8, 'per_class': True, 'n_init': 3}
        """
        return {"name": self.name or type(self).__name__, "strength": self.strength, **self.settings()}


def check_draws(corrector: Corrector, keep: int) -> int:
    """``corrector.draws(keep)``, refused unless it is an integer of at least ``keep`` (a kept
    point is one of the points drawn, never a repeat).

    Raises:
        ValueError: naming the corrector and what ``draws`` returned.

    Examples:
        >>> class Half(Corrector):
        ...     def draws(self, keep):
        ...         return keep // 2
        ...     def correct(self, batch, *, generation, generator, reference):
        ...         return batch.data
        >>> try:
        ...     check_draws(Half(), 10)
        ... except ValueError as err:
        ...     print(err)
        Half.draws(10) returned 5: it must return an integer >= 10 (a kept point is one of those drawn).
    """
    drawn = corrector.draws(keep)
    if not (isinstance(drawn, (int, np.integer)) and not isinstance(drawn, bool)) or drawn < keep:
        raise ValueError(
            f"{type(corrector).__name__}.draws({keep}) returned {drawn!r}: it must return an integer >= {keep}"
            " (a kept point is one of those drawn)."
        )
    return int(drawn)


_REGISTRY: Registry[Corrector] = Registry("corrector", Corrector, "corrector", package="sclc_lightning.correctors")


def register_corrector(name: str) -> Callable[[C], C]:
    """Class decorator registering a :class:`Corrector` under ``name`` (for YAML configs).

    Raises:
        ValueError: ``name`` is already registered to another class.

    Examples:
        >>> @register_corrector("halfway")
        ... class Halfway(Corrector):
        ...     def correct(self, batch, *, generation, generator, reference):
        ...         return batch.data / 2
        >>> get_corrector_class("halfway") is Halfway
        True
    """
    return _REGISTRY.register(name)


def available_correctors() -> list[str]:
    """Registered corrector names.

    Examples:
        >>> [name for name in available_correctors() if name in ("kmeans", "optimal_transport")]
        ['kmeans', 'optimal_transport']
    """
    return _REGISTRY.names()


def get_corrector_class(name: str) -> type[Corrector]:
    """The class registered as ``name``."""
    return _REGISTRY.get(name)


def make_corrector(corrector: Corrector | str | None, kwargs: dict[str, Any] | None = None) -> Corrector | None:
    """Resolve the loop's ``corrector`` argument to an instance (``None`` stays ``None``)."""
    if corrector is None:
        if kwargs:
            raise ValueError(
                "`corrector_kwargs` is only used with a registered corrector name,"
                f" got corrector=None and corrector_kwargs={kwargs!r}."
            )
        return None
    return _REGISTRY.make(corrector, kwargs)


class ModuleCorrector(Corrector):
    """Adapter that calls a ``correct`` method defined on the LightningModule."""

    name = "module"

    def __init__(self, module: Any, strength: float = 1.0) -> None:
        super().__init__(strength)
        self.module = module

    def correct(
        self, batch: SyntheticBatch, *, generation: int, generator: torch.Generator, reference: RealData
    ) -> SyntheticBatch | Tensor:
        result: SyntheticBatch | Tensor = self.module.correct(
            batch, generation=generation, generator=generator, reference=reference
        )
        return result

    def settings(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {"name": f"module:{type(self.module).__name__}.correct", "strength": self.strength}
