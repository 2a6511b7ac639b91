r"""Theory curves: which closed form a group of runs is drawn against, chosen by what its model
and its mixing policy declare, never by their names.

- **The model** declares its theory with a class attribute naming a registered :class:`Theory`,
  ``theory = "gaussian"`` (the bundled :class:`~sclc_lightning.models.GaussianModel` does; a
  subclass inherits it, ``theory = None`` opts out). The report finds the class from the
  ``model.class_path`` of the run's ``config.yaml`` and imports it when it first needs it; a
  class that cannot be imported is warned about, never silently skipped. Any model declaring
  ``"gaussian"`` gets the Gaussian curves, whatever the class is called.
- **The mixing policy** declares what each generation trains on by its plans, a pure function
  (:meth:`~sclc_lightning.mixing.MixingPolicy.plan`): the report asks the run's policy for the
  plans of a few generations and reads :class:`Mixing` from them. A policy of your own that
  trains on the latest synthetic set only is read as replacing, whatever its ``mode`` name.
- **The correction**: a theory is one of the loop left to itself unless it declares
  ``covers_correction = True``; its curves are then drawn only over groups with no corrector (or
  the identity, or a strength γ = 0) and no corrector of the weights
  (:attr:`TheoryGroup.uncorrected`), for every metric.

A theory of your own: subclass :class:`Theory`, override :meth:`~Theory.curve` (optionally
:meth:`~Theory.derive`), register it with :func:`register_theory` and name it in your model's
``theory`` attribute. The built-in theories are registered in
:mod:`sclc_lightning.report.closed_forms`.

Examples:
    >>> @register_theory("doc_halving")
    ... class Halving(Theory):
    ...     def curve(self, metric, group):
    ...         if metric != "w2" or group.mixing is None or not group.mixing.replaces:
    ...             return None
    ...         start = group.mean(metric, group.generations[0])
    ...         return TheoryCurve("w2₀ 2⁻ᵗ (theory)", [start / 2**g for g in group.generations])
    >>> "doc_halving" in available_theories()
    True
"""

from __future__ import annotations

import abc
import functools
import importlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from sclc_lightning._registry import Registry
from sclc_lightning.report.methods import strength
from sclc_lightning.report.runs import ReportError, ReportWarning, Run

__all__ = [
    "Mixing",
    "Theory",
    "TheoryCurve",
    "TheoryGroup",
    "available_theories",
    "declared_theory",
    "derive_series",
    "get_theory_class",
    "read_mixing",
    "register_theory",
]

T = TypeVar("T", bound="type[Theory]")

# The plans read to tell what a policy trains on: generations 2..4 (at generation 1 the latest
# synthetic set is also every one), with a real pool and synthetic sets of this many items.
_PROBE_GENERATIONS = (2, 3, 4)
_PROBE_SIZE = 1000


@dataclass(frozen=True)
class TheoryCurve:
    """A theory's prediction for a group's metric.

    Attributes:
        label: what the curve is, for the legend and caption (``"σ₀ α(n)ᵗ (theory)"``).
        values: one value per generation of :attr:`TheoryGroup.generations`.
    """

    label: str
    values: Sequence[float]


@dataclass(frozen=True)
class Mixing:
    """What every generation :math:`t \\ge 2` trains on, as the run's mixing policy plans it.

    Attributes:
        real: ``"all"`` (the whole real dataset), ``"none"`` or ``"some"``.
        synthetic: ``"latest"`` (the latest synthetic set, whole), ``"every"`` (every set so far,
            whole) or ``"other"`` (subsets, or sets that change from one generation to the next).

    Examples:
        >>> Mixing("none", "latest").replaces, Mixing("all", "every").accumulates
        (True, True)
    """

    real: str
    synthetic: str

    @property
    def replaces(self) -> bool:
        """The latest synthetic set only (Shumailov et al.; Bertrand et al. Prop. 1)."""
        return self.real == "none" and self.synthetic == "latest"

    @property
    def accumulates(self) -> bool:
        """All real data and every synthetic set so far (Gerstgrasser et al.)."""
        return self.real == "all" and self.synthetic == "every"

    @property
    def augments(self) -> bool:
        """All real data and the latest synthetic set (Gillman et al.; Bertrand et al.)."""
        return self.real == "all" and self.synthetic == "latest"


@dataclass(frozen=True)
class TheoryGroup:
    """What a theory reads of a group of runs that differ only by their seeds.

    Attributes:
        runs: the group's runs.
        generations: the generations of the metric in the first run, sorted.
        mixing: what each generation trains on (``None`` when the run's policy cannot be made
            here: a class not importable, settings it refuses).
    """

    runs: Sequence[Run]
    generations: Sequence[int]
    mixing: Mixing | None

    @property
    def loop(self) -> dict[str, Any]:
        """The loop's settings (:attr:`Run.loop <sclc_lightning.report.runs.Run.loop>`)."""
        return self.runs[0].loop

    def init_args(self, section: str) -> dict[str, Any]:
        """The ``init_args`` of ``config.yaml``'s ``section`` (``"model"``, ``"data"``; ``{}``
        for a run driven from Python)."""
        settings = self.runs[0].config.get(section)
        found = settings.get("init_args") if isinstance(settings, dict) else None
        return found if isinstance(found, dict) else {}

    def mean(self, metric: str, generation: int) -> float:
        """The mean over the runs of ``metric`` at ``generation`` (a run without it counts 0)."""
        return sum(r.series(metric).get(generation, 0.0) for r in self.runs) / len(self.runs)

    @property
    def uncorrected(self) -> bool:
        """Whether the group's runs train on their samples as the model made them: no corrector
        (or the identity, or a strength γ = 0) and no corrector of the weights.

        Examples:
            >>> from pathlib import Path
            >>> def group(**loop: Any) -> TheoryGroup:
            ...     return TheoryGroup([Run(Path("r"), {"loop": loop}, [])], [0], None)
            >>> group().uncorrected, group(corrector="identity").uncorrected
            (True, True)
            >>> group(corrector="optimal_transport", corrector_kwargs={"strength": 1}).uncorrected
            False
            >>> group(corrector="kmeans").uncorrected, group(model_corrector={"name": "neon"}).uncorrected
            (False, False)
        """
        return strength(self.loop) == 0 and self.loop.get("model_corrector") is None

    def temperature(self) -> float | None:
        """The sampling temperature τ (1 without ``sample_kwargs``; ``None`` when the sampling
        settings are others no theory here covers)."""
        settings = self.loop.get("sample_kwargs") or {}
        if not isinstance(settings, dict) or set(settings) - {"temperature"}:
            return None
        tau = settings.get("temperature", 1.0)
        return float(tau) if isinstance(tau, (int, float)) and tau > 0 else None


class Theory(abc.ABC):
    """Base class of theories: the closed forms a model family's runs are drawn against.
    Override :meth:`curve`; :meth:`derive` is optional.

    Register a subclass with :func:`register_theory` and name it in a model's ``theory``
    attribute; see the module's example.
    """

    name: ClassVar[str] = ""
    #: Whether the theory predicts runs whose samples or weights are corrected. ``False`` (a
    #: theory of the loop left to itself, as the built-in ones are): its curves are drawn only over
    #: groups without correction (:attr:`TheoryGroup.uncorrected`), whatever the metric.
    covers_correction: ClassVar[bool] = False

    @abc.abstractmethod
    def curve(self, metric: str, group: TheoryGroup) -> TheoryCurve | None:
        """The prediction for ``metric`` in ``group`` at :attr:`TheoryGroup.generations`, or
        ``None`` where this theory says nothing (another metric, a mixing or a corrector it does
        not cover)."""

    def derive(self, series: Mapping[str, Mapping[int, float]]) -> dict[str, dict[int, float]]:
        """Series computed from a run's logged ones (``{metric: {generation: value}}``), drawn
        like logged metrics; by default none."""
        return {}


_REGISTRY: Registry[Theory] = Registry("theory", Theory, "theory")


def register_theory(name: str) -> Callable[[T], T]:
    """Class decorator registering a :class:`Theory` under ``name``, the value a model's
    ``theory`` attribute gives.

    Raises:
        ValueError: ``name`` is already registered to another class.
    """
    return _REGISTRY.register(name)


def available_theories() -> list[str]:
    """The registered theory names.

    Examples:
        >>> [name for name in available_theories() if name in ("gaussian", "linear_regression")]
        ['gaussian', 'linear_regression']
    """
    return _REGISTRY.names()


def get_theory_class(name: str) -> type[Theory]:
    """The class registered as ``name``.

    Raises:
        ValueError: nothing is registered as ``name``.
    """
    return _REGISTRY.get(name)


@functools.cache
def _import_class(path: str) -> type | str:
    """The class at ``path`` (``"package.module.Class"``), or why it cannot be imported."""
    module, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        return f"{type(err).__name__}: {err}"
    return found if isinstance(found, type) else f"{path} is not a class"


def _class_of(section: Any, setting: str, what: str) -> type | None:
    """The class a ``config.yaml`` section names (``{"class_path": ...}``); ``None``, with a
    warning when it names one that cannot be imported."""
    path = section.get("class_path") if isinstance(section, dict) else None
    if not isinstance(path, str):
        return None
    found = _import_class(path)
    if isinstance(found, str):
        # one message per class, whatever the run (`sclc report` prints it once)
        warnings.warn(
            f"the {what} class {path!r} (`{setting}.class_path` in config.yaml) cannot be imported ({found});"
            " no theory is drawn over the runs that name it (make its module importable where sclc report runs).",
            ReportWarning,
            stacklevel=3,
        )
        return None
    return found


def declared_theory(run: Run) -> str | None:
    """The theory the run's model class declares (its ``theory`` attribute), ``None`` when it
    declares none or the run records no model class (a run driven from Python has no
    ``config.yaml``).

    Raises:
        ReportError: the model declares a theory that is not registered.
    """
    model = _class_of(run.config.get("model"), "model", "model")
    name = getattr(model, "theory", None)
    if name is not None and (not isinstance(name, str) or name not in _REGISTRY):
        raise ReportError(
            f"The model {getattr(model, '__qualname__', model)} of run {run.path} declares"
            f" `theory` = {name!r}; it must be one of {available_theories()} (register_theory)."
        )
    return name


def read_mixing(run: Run) -> Mixing | None:
    """What each generation of ``run`` trains on, read from its mixing policy's plans (``None``
    when the policy cannot be made here).

    Examples:
        >>> from pathlib import Path
        >>> read_mixing(Run(Path("r"), {"loop": {"mode": "replace"}}, []))
        Mixing(real='none', synthetic='latest')
        >>> read_mixing(Run(Path("r"), {"loop": {"mode": "replace", "mode_kwargs": {"keep_real": 0.1}}}, []))
        Mixing(real='some', synthetic='latest')
    """
    from sclc_lightning.mixing import MixingPolicy, make_mixing_policy

    mode: Any = run.loop.get("mode")
    kwargs = dict(run.loop.get("mode_kwargs") or {})
    try:
        if isinstance(mode, dict):  # a class path in config.yaml
            policy_class = _class_of(mode, "loop.mode", "mixing policy")
            policy = None if policy_class is None else policy_class(**{**(mode.get("init_args") or {}), **kwargs})
        else:
            policy = make_mixing_policy(mode, kwargs)
    except (ValueError, TypeError):
        return None
    return _read_plans(policy) if isinstance(policy, MixingPolicy) else None


def _read_plans(policy: Any) -> Mixing | None:
    real, synthetic = set(), set()
    for t in _PROBE_GENERATIONS:
        try:
            plan = policy.plan(t, _PROBE_SIZE, dict.fromkeys(range(1, t + 1), _PROBE_SIZE), seed=0)
        except (ValueError, TypeError, RuntimeError, KeyError, IndexError):  # a policy of sizes it refuses
            return None
        real.add(_real_share(plan))
        synthetic.add(_synthetic_share(plan, t))
    return Mixing(real.pop() if len(real) == 1 else "some", synthetic.pop() if len(synthetic) == 1 else "other")


def _real_share(plan: Any) -> str:
    count = plan.num_real(_PROBE_SIZE)
    if count == 0:
        return "none"
    whole = plan.real_indices is None or int(plan.real_indices.unique().numel()) == _PROBE_SIZE
    return "all" if whole else "some"


def _synthetic_share(plan: Any, generation: int) -> str:
    sets = [g for g, _ in plan.synthetic]
    if any(rows is not None for _, rows in plan.synthetic):
        return "other"
    if sets == [generation]:
        return "latest"
    return "every" if sets == list(range(1, generation + 1)) else "other"


def _theory_of(run: Run) -> Theory | None:
    name = declared_theory(run)
    return None if name is None else get_theory_class(name)()


def _theory_curve(metric: str, runs: list[Run]) -> tuple[str, list[int], list[float]] | None:
    """The theory's prediction for ``metric`` in this group of runs, if one applies, as
    ``(label, generations, values)``.

    Raises:
        ValueError: the theory gives a number of values other than one per generation.
    """
    generations = sorted(runs[0].series(metric))
    theory = _theory_of(runs[0]) if generations else None
    if theory is None:
        return None
    group = TheoryGroup(runs, generations, read_mixing(runs[0]))
    if not (theory.covers_correction or group.uncorrected):
        return None
    curve = theory.curve(metric, group)
    if curve is None:
        return None
    if len(curve.values) != len(generations):
        raise ValueError(
            f"The theory {theory.name!r} gave {len(curve.values)} values of {metric!r} for"
            f" {len(generations)} generations; it must give one per generation."
        )
    return curve.label, generations, [float(v) for v in curve.values]


def derive_series(runs: Sequence[Run]) -> None:
    """Add to each run the series its theory derives from its logged ones
    (:meth:`Theory.derive`, e.g. the Gaussian's ``log_sigma_ratio``)."""
    for run in runs:
        theory = _theory_of(run)
        if theory is None:
            continue
        logged = {metric: run.series(metric) for metric in run.metrics()}
        for metric, values in theory.derive(logged).items():
            run.add_series(metric, values)
