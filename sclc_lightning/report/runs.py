"""A run (its folder, settings and metrics by generation) and the groups of runs that differ only
by their seeds. The loop's settings are those its manifest records, the rest come from
``config.yaml`` (:mod:`~sclc_lightning.report.reading` finds and reads run directories)."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sclc_lightning.report.methods import applies_strength

__all__ = ["ReportError", "ReportWarning", "Run", "group_runs", "loop_settings"]

# Columns of metrics.csv that are bookkeeping rather than metrics.
_NOT_METRICS = {"generation", "epoch"}
# Settings that tell runs of one group apart without making them different experiments.
_NOT_SETTINGS = {"run_dir", "ckpt_path", "wandb", "loop.output_dir", "trainer.default_root_dir"}


class ReportError(ValueError):
    """What ``sclc report`` cannot do with the folders or ``--out`` it was given (the message
    names the folder or file and what is allowed)."""


class ReportWarning(UserWarning):
    """What ``sclc report`` goes on without, and says so: a model class it cannot import (no
    theory drawn), two runs of one seed in a group (one is kept). The command prints each message
    once, on one line (``sclc report: warning: ...``)."""


@dataclass
class Run:
    """One run: its folder, settings and per-generation metrics.

    Attributes:
        path: the run's folder.
        config: its ``config.yaml`` (``{}`` for a run driven from Python).
        rows: its metrics, one row per generation (runs read from disk keep them by metric
            instead, see :meth:`series`, and leave this empty).
        recorded: the loop's settings as its manifest records them (``None`` without one).

    Examples:
        >>> run = Run(Path("r"), {"loop": {"synthetic_fraction": 0.5, "mode": "augment"}},
        ...           [{"generation": 0.0, "w2": 1.0}, {"generation": 1.0, "w2": 0.5}])
        >>> run.group, run.series("w2"), sorted(run.metrics())
        ('λ=0.5 γ=0 augment none', {0: 1.0, 1: 0.5}, ['w2'])
    """

    path: Path
    config: dict[str, Any]
    rows: list[dict[str, float]]
    recorded: dict[str, Any] | None = None
    _series: dict[str, dict[int, float]] | None = field(default=None, repr=False)

    @classmethod
    def from_series(
        cls, path: Path, config: dict[str, Any], series: dict[str, dict[int, float]], recorded: dict[str, Any] | None
    ) -> Run:
        """A run whose metrics are given by metric, ``{metric: {generation: value}}`` (a
        ``metrics.csv`` read as a stream), not as rows."""
        return cls(path, config, [], recorded, series)

    @property
    def loop(self) -> dict[str, Any]:
        """The loop's settings, in the shape of ``config.yaml``'s ``loop`` section: from the
        manifest when the run has one, else from ``config.yaml``."""
        if self.recorded is not None:
            return loop_settings(self.recorded)
        loop: dict[str, Any] = self.config.get("loop") or {}
        return loop

    @property
    def group(self) -> str:
        """The run's settings without its seed, e.g. ``λ=0.5 γ=1.0 augment optimal_transport``."""
        kwargs = self.loop.get("corrector_kwargs") or {}
        corrector = self.loop.get("corrector") or "none"
        if isinstance(corrector, dict):
            corrector = str(corrector.get("class_path", "custom")).rsplit(".", 1)[-1]
        gamma = kwargs.get("strength", "default" if corrector != "none" else 0)
        if not applies_strength(corrector):  # the identity: γ = 0 whatever `strength` says
            gamma = 0
        label = f"λ={self.loop.get('synthetic_fraction')} γ={gamma} {self.loop.get('mode')} {corrector}"
        model_corrector = self.loop.get("model_corrector")
        if isinstance(model_corrector, dict):  # as recorded: its name and settings
            label += f" +{model_corrector.get('name', 'model corrector')}"
        elif isinstance(model_corrector, str):
            label += f" +{model_corrector}"
        return label

    @property
    def seeds(self) -> tuple[tuple[str, str], ...] | None:
        """The run's seeds, as ``(setting, value)`` pairs: every setting named ``seed`` or
        ``seed_everything`` that is set (the loop's as recorded, the model's, the data's); ``None``
        when it records none, so that runs of unknown seeds are never taken for one another.

        Examples:
            >>> Run(Path("r"), {"seed_everything": 3, "loop": {"seed": 3}}, []).seeds
            (('loop.seed', '3'), ('seed_everything', '3'))
            >>> Run(Path("r"), {"loop": {"seed": None}}, []).seeds is None
            True
        """
        flat = _flatten({**{k: v for k, v in self.config.items() if k != "loop"}, "loop": self.loop})
        seeds = tuple(sorted((k, v) for k, v in flat.items() if _is_seed(k) and v != "None"))
        return seeds or None

    def series(self, metric: str) -> dict[int, float]:
        """``{generation: value}`` of ``metric`` (NaN and empty cells left out)."""
        return self._by_metric().get(metric, {})

    def add_series(self, metric: str, values: Mapping[int, float]) -> None:
        """Add a series computed from the others (a theory's
        :meth:`~sclc_lightning.report.theory.Theory.derive`); a logged one of that name wins."""
        self._by_metric().setdefault(metric, dict(values))

    def _by_metric(self) -> dict[str, dict[int, float]]:
        if self._series is None:
            self._series = {}
            for row in self.rows:
                for key, value in row.items():
                    if key != "generation" and not math.isnan(value):
                        self._series.setdefault(key, {})[int(row["generation"])] = value
        return self._series

    def metrics(self) -> set[str]:
        """The metrics the run logged."""
        return set(self._by_metric()) - _NOT_METRICS

    def last_generation(self) -> int:
        """The last generation with a row."""
        last = max((max(values) for values in self._by_metric().values() if values), default=0)
        return max(last, *(int(r["generation"]) for r in self.rows)) if self.rows else last


def loop_settings(recorded: dict[str, Any]) -> dict[str, Any]:
    """A manifest's record of the loop's settings in the shape of ``config.yaml``'s ``loop``
    section (``corrector`` by name, its strength and settings in ``corrector_kwargs``).

    Examples:
        >>> recorded = {"synthetic_fraction": 0.5, "mode": "accumulate", "mode_settings": {},
        ...             "corrector": {"name": "kmeans", "strength": 1.0, "num_clusters": 8}, "seed": 3}
        >>> loop_settings(recorded)["corrector_kwargs"]
        {'strength': 1.0, 'num_clusters': 8}
    """
    # the real data's digest differs between seeds of one experiment: not a setting to group by
    loop = {k: v for k, v in recorded.items() if k not in ("corrector", "mode_settings", "n", "real_data")}
    loop["mode_kwargs"] = recorded.get("mode_settings") or None
    corrector = recorded.get("corrector")
    if isinstance(corrector, dict):
        loop["corrector"] = corrector.get("name")
        loop["corrector_kwargs"] = {k: v for k, v in corrector.items() if k != "name"}
    else:
        loop["corrector"], loop["corrector_kwargs"] = None, None
    return loop


def _flatten(config: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(config, dict):
        flat: dict[str, str] = {}
        for key, value in config.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: repr(config)}


def _is_seed(setting: str) -> bool:
    return setting.endswith("seed") or setting.endswith("seed_everything")


def _settings(run: Run) -> dict[str, str]:
    """The run's configuration (the loop's as recorded, see :attr:`Run.loop`), flattened, without
    its seeds and paths."""
    flat = _flatten({**{k: v for k, v in run.config.items() if k != "loop"}, "loop": run.loop})
    return {
        k: v
        for k, v in flat.items()
        if k not in _NOT_SETTINGS and not _is_seed(k) and not k.startswith("trainer.logger")
    }


def _extra(settings: dict[str, str], differing: list[str], short: bool) -> str:
    """The settings that tell a group apart, as ``name=value``; ``short`` leaves out those absent
    or None (``mode_kwargs=None`` beside ``max_synthetic=10``)."""
    shown = [(name, settings.get(name, "-")) for name in differing]
    return " ".join(f"{n.rsplit('.', 1)[-1]}={v}" for n, v in shown if not short or v not in ("-", "None"))


def _names(label: str, dicts: list[dict[str, str]]) -> list[str]:
    """Distinct names for groups sharing ``label``: first with only the settings whose given
    values differ (not those some groups lack), then every differing one, then absent ones too."""
    differing = sorted({name for d in dicts for name in d if len({e.get(name) for e in dicts}) > 1})
    # a setting given (not None) in some groups only tells them apart too: a new setting that
    # older runs never recorded (`passes_per_generation=20` beside runs without it)
    varying = [
        name
        for name in differing
        if len({d[name] for d in dicts if name in d}) > 1
        or (any(d.get(name, "None") != "None" for d in dicts) and any(name not in d for d in dicts))
    ]
    names: list[str] = []
    for shown, short in ((varying, True), (differing, True), (differing, False)):
        names = [f"{label} {_extra(d, shown, short)}".strip() for d in dicts]
        if len(set(names)) == len(names):
            break
    return names


def _one_per_seed(name: str, members: list[Run]) -> list[Run]:
    """``members`` with one run per seed: of runs sharing their seeds (a run copied, or repeated
    with the same seed), the one that reached the furthest generation (the first found among
    equals) is kept, with a :class:`ReportWarning` naming them all; runs of unknown seed are all
    kept."""
    by_seed: dict[tuple[tuple[str, str], ...] | int, list[Run]] = defaultdict(list)
    for index, run in enumerate(members):
        by_seed[run.seeds if run.seeds is not None else index].append(run)
    kept = [max(same, key=lambda run: run.last_generation()) for same in by_seed.values()]  # max: first of equals
    for seeds, chosen in zip(by_seed, kept):
        others = [str(run.path) for run in by_seed[seeds] if run is not chosen]
        if others and isinstance(seeds, tuple):
            warnings.warn(
                f"group {name!r}: the runs {chosen.path}, {', '.join(others)} have the same seeds"
                f" ({', '.join(f'{k}={v}' for k, v in seeds)}); one seed counts once: {chosen.path} is kept (it"
                f" reached generation {chosen.last_generation()}, the furthest); left out of the mean, the band and"
                f" summary.csv: {', '.join(others)}.",
                ReportWarning,
                stacklevel=3,
            )
    return kept


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs that differ only by their seeds (and paths), by a label: :attr:`Run.group`, plus the
    settings that tell apart groups sharing that label (``replace none keep_real=0.1``).

    A group holds one run per seed: of runs with the same seeds (:attr:`Run.seeds`) only the one
    that reached the furthest generation is kept, with a :class:`ReportWarning` naming them.

    Examples:
        >>> rows = [{"generation": 0.0, "w2": 1.0}]
        >>> runs = [Run(Path(name), {"loop": {"mode": "replace", "seed": 0}}, rows) for name in ("a", "copy_of_a")]
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     [[run.path.name for run in members] for members in group_runs(runs).values()]
        [['a']]
        >>> for part in str(caught[0].message).split("; "):
        ...     print(part)
        group 'λ=None γ=0 replace none': the runs a, copy_of_a have the same seeds (loop.seed=0)
        one seed counts once: a is kept (it reached generation 0, the furthest)
        left out of the mean, the band and summary.csv: copy_of_a.
    """
    by_settings: dict[tuple[tuple[str, str], ...], list[Run]] = defaultdict(list)
    for run in runs:
        by_settings[tuple(sorted(_settings(run).items()))].append(run)
    labels: dict[str, list[tuple[tuple[str, str], ...]]] = defaultdict(list)
    for key, members in by_settings.items():
        labels[members[0].group].append(key)
    groups: dict[str, list[Run]] = {}
    for label, keys in labels.items():
        for key, name in zip(keys, _names(label, [dict(k) for k in keys])):
            groups[name] = _one_per_seed(name, by_settings[key])
    return groups
