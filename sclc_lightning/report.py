r"""``sclc report RUN_OR_GRID_DIR ... --out DIR``: paper-style figures of a loop's metrics.

Every run directory (a ``metrics.csv`` beside the run's ``config.yaml`` or its synthetic data's
``manifest.json``) found under the given folders is read. The loop's settings (λ, mode and its
settings, corrector and all its settings, seed, ...) are those the run recorded in its manifest,
whether ``sclc fit`` or a Python script drove it; the other sections of ``config.yaml`` (model,
data, trainer) complete them. Runs that differ only by seed are grouped, labelled by
(λ, γ, mode, corrector) and the other settings that differ between groups, and drawn as their
mean with a ±1 standard-deviation band. For each metric a PNG of the metric against the
generation is written, one line per group. Where the theory has a closed form it is drawn
dashed over the measured curve: ``sigma`` of replace-mode Gaussian runs gets
:math:`\sigma_0\,\alpha(n)^t` (Bertrand et al. Prop. 1); ``test_error`` of linear regression on
its own targets (λ = 1, replace or accumulate) gets
:func:`~sclc_lightning.theory.linear_regression_error`. An ``augment`` group whose λ is at or
above the stability bound :math:`(1+\gamma)/(2+\gamma)` of Gillman et al. Thm. 4.3 says so in the
legend (:func:`stability_note`). ``report.html`` holds every figure and
each run's sample pictures across generations, embedded so the page is self-contained.
``summary.csv`` gives, per group and metric, the mean and standard deviation over seeds of the
last generation's value and of the second half's average (:func:`write_summary`).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import json
import math
import re
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sclc_lightning._files import atomic_path, atomic_write
from sclc_lightning.theory import gaussian_collapse_rate, linear_regression_error

__all__ = [
    "ReportError",
    "Run",
    "figure_name",
    "find_runs",
    "group_runs",
    "main",
    "spreadsheet_safe",
    "stability_note",
    "write_report",
    "write_summary",
]

# Columns of metrics.csv that are bookkeeping rather than metrics.
_NOT_METRICS = {"generation", "epoch"}
# The most generations a figure draws per group.
_MAX_POINTS = 20_000
# What starts a spreadsheet formula (OWASP, CSV injection); such text cells get a leading "'".
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class ReportError(ValueError):
    """What ``sclc report`` cannot do with the folders or ``--out`` it was given (the message
    names the folder or file and what is allowed)."""


@dataclass
class Run:
    """One run: its folder, settings and per-generation metrics.

    Attributes:
        path: the run's folder.
        config: its ``config.yaml`` (``{}`` for a run driven from Python).
        rows: its metrics, one row per generation (runs read from disk keep them by metric
            instead, see :meth:`series`, and leave this empty).
        recorded: the loop's settings as its manifest records them (``None`` without one).
    """

    path: Path
    config: dict[str, Any]
    rows: list[dict[str, float]]
    recorded: dict[str, Any] | None = None
    _series: dict[str, dict[int, float]] | None = field(default=None, repr=False)

    @classmethod
    def read(cls, path: Path, config: dict[str, Any], metrics: Path, recorded: dict[str, Any] | None) -> Run:
        """The run whose ``metrics.csv`` is ``metrics``, read as a stream, by metric."""
        run = cls(path, config, [], recorded, _read_series(metrics))
        run._derive()
        return run

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
        if not _applies_strength(corrector):  # the identity: γ = 0 whatever `strength` says
            gamma = 0
        label = f"λ={self.loop.get('synthetic_fraction')} γ={gamma} {self.loop.get('mode')} {corrector}"
        model_corrector = self.loop.get("model_corrector")
        if isinstance(model_corrector, dict):  # as recorded: its name and settings
            label += f" +{model_corrector.get('name', 'model corrector')}"
        elif isinstance(model_corrector, str):
            label += f" +{model_corrector}"
        return label

    def series(self, metric: str) -> dict[int, float]:
        """``{generation: value}`` of ``metric`` (NaN and empty cells left out)."""
        if self._series is None:
            self._series = {}
            for row in self.rows:
                for key, value in row.items():
                    if key != "generation" and not math.isnan(value):
                        self._series.setdefault(key, {})[int(row["generation"])] = value
            self._derive()
        return self._series.get(metric, {})

    def _derive(self) -> None:
        r"""Series computed from others: ``log_sigma_ratio``, :math:`\log(\sigma_t/\sigma_0)` of an
        exactly fitted Gaussian (the statistic whose expectation the theory gives)."""
        assert self._series is not None
        sigma = self._series.get("sigma", {})
        if sigma and _model_is(self, "GaussianModel") and "log_sigma_ratio" not in self._series:
            start = sigma[min(sigma)]
            if start > 0:
                self._series["log_sigma_ratio"] = {g: math.log(v / start) for g, v in sigma.items() if v > 0}

    def metrics(self) -> set[str]:
        """The metrics the run logged."""
        self.series("generation")
        assert self._series is not None
        return set(self._series) - _NOT_METRICS

    def last_generation(self) -> int:
        """The last generation with a row."""
        self.series("generation")
        assert self._series is not None
        last = max((max(values) for values in self._series.values() if values), default=0)
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


def _manifest_of(folder: Path) -> Path | None:
    """The manifest of the run whose metrics are in ``folder``: ``synthetic/manifest.json``, or the
    one manifest under the logger's folders (``logs/version_0/synthetic/manifest.json``)."""
    own = folder / "synthetic" / "manifest.json"
    if own.is_file():
        return own
    found = sorted(folder.glob("*/*/synthetic/manifest.json")) + sorted(folder.glob("*/synthetic/manifest.json"))
    return found[0] if len(found) == 1 else None


def _recorded(manifest: Path) -> dict[str, Any] | None:
    """The loop settings a manifest records (``None`` when it cannot be read)."""
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    config = data.get("config") if isinstance(data, dict) else None
    return dict(config) if isinstance(config, dict) and "synthetic_fraction" in config else None


# Settings that tell runs of one group apart without making them different experiments.
_NOT_SETTINGS = {"run_dir", "ckpt_path", "wandb", "loop.output_dir", "trainer.default_root_dir"}


def _flatten(config: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(config, dict):
        flat: dict[str, str] = {}
        for key, value in config.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: repr(config)}


def _settings(run: Run) -> dict[str, str]:
    """The run's configuration (the loop's as recorded, see :attr:`Run.loop`), flattened, without
    its seeds and paths."""
    flat = _flatten({**{k: v for k, v in run.config.items() if k != "loop"}, "loop": run.loop})
    return {
        k: v
        for k, v in flat.items()
        if k not in _NOT_SETTINGS
        and not k.endswith("seed")
        and not k.endswith("seed_everything")
        and not k.startswith("trainer.logger")
    }


def _extra(settings: dict[str, str], differing: list[str], short: bool) -> str:
    """The settings that tell a group apart, as ``name=value``; ``short`` leaves out those absent
    or None (``mode_kwargs=None`` beside ``max_synthetic=10``)."""
    shown = [(name, settings.get(name, "-")) for name in differing]
    return " ".join(f"{n.rsplit('.', 1)[-1]}={v}" for n, v in shown if not short or v not in ("-", "None"))


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs that differ only by their seeds (and paths), by a label: :attr:`Run.group`, plus the
    settings that tell apart groups sharing that label (``replace none keep_real=0.1``)."""
    by_settings: dict[tuple[tuple[str, str], ...], list[Run]] = defaultdict(list)
    for run in runs:
        by_settings[tuple(sorted(_settings(run).items()))].append(run)
    labels: dict[str, list[tuple[tuple[str, str], ...]]] = defaultdict(list)
    for key, members in by_settings.items():
        labels[members[0].group].append(key)
    groups: dict[str, list[Run]] = {}
    for label, keys in labels.items():
        dicts = [dict(k) for k in keys]
        differing = sorted({name for d in dicts for name in d if len({e.get(name) for e in dicts}) > 1})
        # first, only the settings whose given values differ (not those some groups lack)
        varying = [name for name in differing if len({d[name] for d in dicts if name in d}) > 1]
        short = [f"{label} {_extra(d, varying, True)}".strip() for d in dicts]
        if len(set(short)) < len(short):
            short = [f"{label} {_extra(d, differing, True)}".strip() for d in dicts]
        if len(set(short)) < len(short):
            short = [f"{label} {_extra(d, differing, False)}".strip() for d in dicts]
        names = short
        for key, name in zip(keys, names):
            groups[name] = by_settings[key]
    return groups


def _step_wise(path: Path) -> bool:
    """Whether ``path`` is a Lightning ``CSVLogger`` file (a ``step`` column) rather than
    :class:`~sclc_lightning.callbacks.generation_csv.GenerationCSV`'s one row per generation."""
    with open(path, newline="") as handle:
        header = next(csv.reader(handle), [])
    return "step" in header


def _read_series(path: Path) -> dict[str, dict[int, float]]:
    """``metrics.csv`` as ``{metric: {generation: value}}``, read row by row (a file of a million
    generations is never held as rows); cells that are not numbers are left out, and a cell may be
    of any size."""
    series: dict[str, dict[int, float]] = {}
    with _any_field_size(), open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if "generation" not in header:
            return {}
        at = header.index("generation")
        columns = [(index, series.setdefault(name, {})) for index, name in enumerate(header) if index != at]
        for row in reader:
            try:
                generation = int(float(row[at]))
            except (IndexError, ValueError):
                continue
            for index, values in columns:
                try:
                    value = float(row[index])
                except (IndexError, ValueError):
                    continue
                if not math.isnan(value):
                    values[generation] = value
            series.setdefault("generation", {})[generation] = float(generation)
    return series


@contextlib.contextmanager
def _any_field_size() -> Iterator[None]:
    """Lift the csv module's 128 kB limit on one cell while reading."""
    before = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        yield
    finally:
        csv.field_size_limit(before)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ReportError(f"{path} is not valid YAML{where} ({getattr(err, 'problem', None) or err}).") from None
    if config is not None and not isinstance(config, dict):
        raise ReportError(f"{path} holds a {type(config).__name__}, not a mapping of settings.")
    return config or {}


def find_runs(folders: Sequence[str | Path]) -> list[Run]:
    """Every run directory under ``folders``: a ``metrics.csv`` beside a ``config.yaml`` (``sclc fit``)
    or the run's synthetic data manifest (the loop used from Python with ``GenerationCSV``:
    ``synthetic/manifest.json``, or the one under the logger's folder); Lightning's own step-wise
    ``logs/*/metrics.csv`` are not runs."""
    runs = []
    for folder in folders:
        root = Path(folder)
        if not root.exists():
            raise FileNotFoundError(f"No such run or grid folder: {str(root)!r}.")
        for metrics in sorted(root.rglob("metrics.csv")):
            config_path = metrics.parent / "config.yaml"
            manifest = _manifest_of(metrics.parent)
            if not config_path.exists() and manifest is None:
                continue
            if _step_wise(metrics):  # a Lightning logger's file (one row per logging step)
                continue
            config = _read_config(config_path) if config_path.exists() else {}
            recorded = None if manifest is None else _recorded(manifest)
            run = Run.read(metrics.parent, config or {}, metrics, recorded)
            if run.series("generation"):
                runs.append(run)
    if not runs:
        raise FileNotFoundError(f"No run with a metrics.csv under {[str(f) for f in folders]}.")
    return runs


def _init_args(run: Run, section: str) -> dict[str, Any]:
    args: dict[str, Any] = (run.config.get(section) or {}).get("init_args") or {}
    return args


def _model_is(run: Run, name: str) -> bool:
    return str((run.config.get("model") or {}).get("class_path", "")).endswith(name)


def _gaussian_sigma_theory(runs: list[Run], generations: list[int]) -> tuple[str, list[float]] | None:
    """σ0 α(n)^t for replace-mode Gaussian runs (Bertrand et al. Prop. 1)."""
    first = runs[0]
    n = _init_args(first, "data").get("n")
    if not (_model_is(first, "GaussianModel") and first.loop.get("mode") == "replace" and isinstance(n, int)):
        return None
    if first.loop.get("model_corrector") is not None:  # the weights are changed: not Prop. 1's process
        return None
    tau = _temperature(first)
    if tau is None:
        return None
    rate = tau * gaussian_collapse_rate(n)
    start = sum(r.series("sigma").get(generations[0], 0.0) for r in runs) / len(runs)
    label = "σ0 α(n)^t (theory)" if tau == 1 else f"σ0 (τα(n))^t, τ={tau:g} (theory)"
    return label, [start * rate ** (g - generations[0]) for g in generations]


def _temperature(run: Run) -> float | None:
    """The sampling temperature τ of the run (1 without ``sample_kwargs``; ``None`` when its
    sampling settings are others the theory does not cover)."""
    settings = run.loop.get("sample_kwargs") or {}
    tau = settings.get("temperature", 1.0) if isinstance(settings, dict) else None
    others = set(settings) - {"temperature"} if isinstance(settings, dict) else {"?"}
    return float(tau) if isinstance(tau, (int, float)) and tau > 0 and not others else None


def _gaussian_log_sigma_theory(runs: list[Run], generations: list[int]) -> tuple[str, list[float]] | None:
    """E[log(σ_t/σ_0)] for replace-mode Gaussian runs at temperature τ (theory.expected_log_sigma_ratio)."""
    from sclc_lightning.theory import expected_log_sigma_ratio

    first = runs[0]
    n, tau = _init_args(first, "data").get("n"), _temperature(first)
    if not (
        _model_is(first, "GaussianModel")
        and first.loop.get("mode") == "replace"
        and first.loop.get("synthetic_fraction") == 1
        and first.loop.get("corrector") is None
        and first.loop.get("model_corrector") is None
        and isinstance(n, int)
        and tau is not None
    ):
        return None
    start = generations[0]
    return "E[log σt/σ0] (theory)", [expected_log_sigma_ratio(g - start, n, tau) for g in generations]


def _regression_error_theory(runs: list[Run], generations: list[int]) -> tuple[str, list[float]] | None:
    """Gerstgrasser et al.'s expected test error of least squares on its own targets."""
    first = runs[0]
    data = _init_args(first, "data")
    n, dim, noise = data.get("n"), data.get("dim"), data.get("noise_std")
    mode = first.loop.get("mode")
    if not (
        _model_is(first, "LinearRegressionModel")
        and mode in ("replace", "accumulate")
        and first.loop.get("corrector") is None
        and not first.loop.get("sample_kwargs")
        and first.loop.get("synthetic_fraction") == 1
        and _init_args(first, "model").get("noise_std", noise) == noise
        and isinstance(n, int)
        and isinstance(dim, int)
        and isinstance(noise, (int, float))
        and n >= dim + 2
    ):
        return None
    label = "σ²d/(n−d−1)·(t+1) (theory)" if mode == "replace" else "σ²d/(n−d−1)·Σ1/k² (theory)"
    return label, [linear_regression_error(g, n, dim, float(noise), mode) for g in generations]


# metric -> closed forms that may apply to a group of runs (None when they do not)
_THEORY = {
    "sigma": [_gaussian_sigma_theory],
    "log_sigma_ratio": [_gaussian_log_sigma_theory],
    "test_error": [_regression_error_theory],
}


def _theory_curve(metric: str, runs: list[Run]) -> tuple[str, list[int], list[float]] | None:
    """The theory's prediction for ``metric`` in this group of runs, if one applies."""
    generations = sorted(runs[0].series(metric))
    if not generations:
        return None
    for curve in _THEORY.get(metric, []):
        found = curve(runs, generations)
        if found is not None:
            return found[0], generations, found[1]
    return None


def _applies_strength(corrector: Any) -> bool:
    """Whether a corrector (a registered name; other forms are assumed to) uses its strength."""
    if not isinstance(corrector, str) or corrector == "none":
        return True
    from sclc_lightning.correctors import get_corrector_class

    try:
        return bool(get_corrector_class(corrector).applies_strength)
    except (ValueError, KeyError):
        return True


def _strength(run: Run) -> float | None:
    """γ of the run: ``0`` without a corrector, the configured strength, else the registered
    corrector's default (``None`` for a corrector given as a class path)."""
    corrector = run.loop.get("corrector")
    if corrector is None or not _applies_strength(corrector):
        return 0.0
    strength = (run.loop.get("corrector_kwargs") or {}).get("strength")
    if strength is None and isinstance(corrector, str):
        import inspect

        from sclc_lightning.correctors import get_corrector_class

        try:
            strength = inspect.signature(get_corrector_class(corrector)).parameters["strength"].default
        except (ValueError, KeyError):
            return None
    return float(strength) if isinstance(strength, (int, float)) else None


def _selects(corrector: Any) -> bool:
    """Whether ``corrector`` (a registered name) keeps some samples rather than correcting them."""
    if not isinstance(corrector, str):
        return False
    from sclc_lightning.correctors import SelectingCorrector, available_correctors, get_corrector_class

    return corrector in available_correctors() and issubclass(get_corrector_class(corrector), SelectingCorrector)


def stability_note(runs: list[Run]) -> str | None:
    r"""A warning for a group whose :math:`\lambda` is at or above the stability bound of
    Gillman et al. Thm. 4.3, in its most favourable case (:math:`\varepsilon L/\alpha \to 0`):
    :math:`\lambda < (1+\gamma)/(2+\gamma)`. The theorem is about real data augmented with
    synthetic data, so only ``augment`` runs get one.

    Examples:
        >>> run = Run(Path("r"), {"loop": {"synthetic_fraction": 0.75, "mode": "augment"}}, [])
        >>> stability_note([run])
        'λ=0.75 ≥ (1+γ)/(2+γ)=0.50: outside the stability bound (Gillman Thm. 4.3)'
        >>> run.config["loop"].update(corrector="optimal_transport", corrector_kwargs={"strength": 5.0})
        >>> stability_note([run]) is None  # (1+5)/(2+5) = 0.86
        True
    """
    from sclc_lightning.theory import max_stable_fraction

    loop = runs[0].loop
    fraction, gamma = loop.get("synthetic_fraction"), _strength(runs[0])
    if loop.get("mode") != "augment" or not isinstance(fraction, (int, float)) or fraction <= 0 or gamma is None:
        return None
    if _selects(loop.get("corrector")):  # curation and verification do not pull toward the data: not Thm. 4.3's
        return None
    bound = max_stable_fraction(gamma, alpha=1.0, epsilon=0.0, lipschitz=0.0)
    if fraction < bound:
        return None
    return f"λ={fraction} ≥ (1+γ)/(2+γ)={bound:.2f}: outside the stability bound (Gillman Thm. 4.3)"


def _log_scale(values: list[float]) -> bool:
    """Whether a metric spans more than three decades of positive values (a divergence, a
    collapsing variance): then its figure has a logarithmic axis.

    Examples:
        >>> _log_scale([0.007, 17000.0]), _log_scale([0.1, 50.0]), _log_scale([-1.0, 5000.0])
        (True, False, False)
    """
    return bool(values) and min(values) > 0 and max(values) > 1000 * min(values)


def _plot_metric(metric: str, groups: dict[str, list[Run]], path: Path) -> list[str]:
    """Draw ``metric`` against the generation, one line per group, into ``path``; the theory
    curves drawn over it, as ``"group: curve"``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    theories: list[str] = []
    for name, runs in sorted(groups.items()):
        series = [r.series(metric) for r in runs]
        generations = sorted({g for values in series for g in values})
        if not generations:
            continue
        # a figure is a few hundred pixels wide: beyond 20,000 generations every k-th is drawn
        generations = generations[:: max(1, len(generations) // _MAX_POINTS)]
        spread = [_mean_std([values[g] for values in series if g in values]) for g in generations]
        means, stds = [m for m, _ in spread], [s for _, s in spread]
        label = f"{name} ({len(runs)} run{'s' if len(runs) > 1 else ''})"
        note = stability_note(runs)
        if note is not None:
            label += f"\n  {note}"
        line = ax.plot(generations, means, label=label)[0]
        if len(runs) > 1:
            ax.fill_between(
                generations,
                [m - s for m, s in zip(means, stds)],
                [m + s for m, s in zip(means, stds)],
                color=line.get_color(),
                alpha=0.2,
            )
        theory = _theory_curve(metric, runs)
        if theory is not None:
            ax.plot(theory[1], theory[2], linestyle="--", color=line.get_color(), label=f"{name}: {theory[0]}")
            theories.append(f"{name}: {theory[0]}")
    if _log_scale([v for runs in groups.values() for r in runs for v in r.series(metric).values()]):
        ax.set_yscale("log")
    shown = metric.replace("$", r"\$")  # a name is text, never matplotlib mathtext
    ax.set(xlabel="generation", ylabel=shown, title=shown)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # generations are whole: no 0.5, 1.5
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return theories


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>sclc report</title>
<style>
body{font-family:sans-serif;margin:2em} img{max-width:560px;margin:4px} td,th{padding:2px 8px;text-align:left}
</style></head><body>
<h1>Self-consuming loop report</h1><p>{{ runs|length }} runs in {{ groups }} groups.</p>
<h2>Runs</h2><table><tr><th>run</th><th>group</th><th>seed</th><th>generations</th></tr>
{% for run in runs %}
<tr><td>{{ run.path }}</td><td>{{ run.group }}</td><td>{{ run.seed }}</td><td>0..{{ run.last }}</td></tr>
{% endfor %}</table>
<h2>Metrics</h2>
{% for figure in figures %}
<h3>{{ figure.metric }}</h3><figure><img src="data:image/png;base64,{{ figure.data }}" alt="{{ figure.alt }}">
<figcaption>{{ figure.caption }}</figcaption></figure>
{% endfor %}
{% if samples %}<h2>Samples across generations</h2>{% endif %}
{% for run in samples %}<h3>{{ run.path }}</h3>
{% for picture in run.pictures %}
<figure style="display:inline-block"><img src="data:image/png;base64,{{ picture.data }}" alt="{{ picture.alt }}">
<figcaption>{{ picture.caption }}</figcaption></figure>
{% endfor %}{% endfor %}
</body></html>
"""


def _base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def figure_name(metric: str, taken: set[str]) -> str:
    """A file name for ``metric``'s figure: letters, digits, ``_.-`` only, no leading dot, unique
    among ``taken`` (which it joins).

    Examples:
        >>> figure_name("../../x", set()), figure_name("<script>", set())
        ('x.png', 'script.png')
    """
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", metric).strip("._") or "metric"
    name, index = f"{stem}.png", 1
    while name in taken:
        index += 1
        name = f"{stem}_{index}.png"
    taken.add(name)
    return name


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5


def spreadsheet_safe(text: str) -> str:
    """``text`` as a CSV cell that a spreadsheet shows and never evaluates: text that would start
    a formula (``=``, ``+``, ``-``, ``@``, tab, carriage return) gets a leading ``'``; numbers
    (``-0.5``, ``+3``) stay as they are.

    Examples:
        >>> for cell in ('=HYPERLINK("http://x", "click")', "-0.5", "fid"):
        ...     print(spreadsheet_safe(cell))
        '=HYPERLINK("http://x", "click")
        -0.5
        fid
    """
    if not text.startswith(_FORMULA_STARTS):
        return text
    try:
        float(text)
    except ValueError:
        return "'" + text
    return text


def write_summary(groups: dict[str, list[Run]], metrics: Sequence[str], path: Path) -> None:
    """``summary.csv``: for every group and metric, over the group's runs (seeds), the mean and
    standard deviation of the metric at the last generation and of its average over the second
    half of the generations (``t > T/2``), the numbers a results table quotes.

    Examples:
        >>> import tempfile
        >>> runs = [Run(Path(str(s)), {}, [{"generation": float(g), "w2": float(g + s)} for g in range(5)])
        ...         for s in (0, 2)]
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_summary({"arm": runs}, ["w2"], Path(folder) / "s.csv")
        ...     print(open(Path(folder) / "s.csv").read().splitlines()[1])
        arm,w2,2,4,5,1,4.5,1
    """
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        columns = ["last_generation", "last_mean", "last_std", "late_mean", "late_std"]
        writer.writerow(["group", "metric", "runs", *columns])
        for name, runs in sorted(groups.items()):
            for metric in metrics:
                series = [r.series(metric) for r in runs]
                series = [s for s in series if s]
                if not series:
                    continue
                last = min(max(s) for s in series)  # the last generation every run reached
                late = [sum(v for g, v in s.items() if last / 2 < g <= last) for s in series]
                counts = [sum(1 for g in s if last / 2 < g <= last) for s in series]
                late_means = [total / count for total, count in zip(late, counts) if count]
                last_mean, last_std = _mean_std([s[last] for s in series if last in s])
                late_mean, late_std = _mean_std(late_means)
                writer.writerow(
                    [
                        spreadsheet_safe(name),
                        spreadsheet_safe(metric),
                        len(series),
                        last,
                        *(f"{v:.6g}" for v in (last_mean, last_std, late_mean, late_std)),
                    ]
                )


def _refuse_inside_run_data(out: Path) -> None:
    """Refuse an output folder inside a run's synthetic data (a folder with a ``manifest.json``,
    or one of its generation folders): the run's resume would refuse the files found there."""
    for folder in (out.resolve(), *out.resolve().parents):
        if (folder / "manifest.json").is_file() or (
            re.fullmatch(r"gen_\d{4,}", folder.name) and (folder.parent / "manifest.json").is_file()
        ):
            raise ReportError(
                f"--out {str(out)!r} is inside the synthetic data of a run ({folder}); files written there"
                " would make that run's resume refuse its folder. Choose a folder outside it."
            )


def write_report(folders: Sequence[str | Path], out: str | Path) -> Path:
    """Write the figures and ``report.html`` for the runs under ``folders``; returns the page.

    Every value in the page is HTML-escaped (a Jinja2 template with autoescape), and the figures'
    file names are made from the metric names safely, inside ``out``.
    """
    from jinja2 import Environment

    runs = find_runs(folders)
    out = Path(out)
    _refuse_inside_run_data(out)
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    label_of = {id(r): label for label, members in groups.items() for r in members}
    metrics = sorted(set().union(*(r.metrics() for r in runs)))
    figures: list[dict[str, str]] = []
    taken: set[str] = set()
    for metric in metrics:
        path = out / figure_name(metric, taken)
        if path.resolve().parent != out.resolve():  # cannot happen with the names above; never write outside
            raise ValueError(f"The figure of metric {metric!r} would be written outside {out}.")
        theories = _plot_metric(metric, groups, path)
        drawn = [name for name, runs in groups.items() if any(r.series(metric) for r in runs)]
        shown = (
            f"{metric} against the generation, one line per group of runs ({len(drawn)} groups), the mean over seeds"
        )
        caption = f"{shown}, with a band of ± 1 standard deviation where a group has several seeds."
        if theories:
            caption += " Dashed: the theory's prediction (" + "; ".join(theories) + ")."
        figures.append({"metric": metric, "data": _base64(path), "alt": shown, "caption": caption})
    table = [
        {
            "path": str(r.path),
            "group": label_of[id(r)],
            "seed": r.loop.get("seed", ""),
            "last": r.last_generation(),
        }
        for r in runs
    ]
    samples = []
    for run in runs:
        files = sorted((run.path / "samples").glob("generation_*.png"))
        chosen = [files[0], files[len(files) // 2], files[-1]] if len(files) > 3 else files
        pictures = [
            {
                "alt": f"samples of run {run.path.name} at {f.stem.replace('_', ' ')}",
                "caption": f"{f.stem.replace('_', ' ')} ({f.name})",
                "data": _base64(f),
            }
            for f in dict.fromkeys(chosen)
        ]
        if pictures:
            samples.append({"path": str(run.path), "pictures": pictures})
    write_summary(groups, metrics, out / "summary.csv")
    page = out / "report.html"
    template = Environment(autoescape=True).from_string(_PAGE)
    atomic_write(page, template.render(runs=table, groups=len(groups), figures=figures, samples=samples))
    return page


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sclc report``: 0 on success; 2, with one line on stderr naming the problem,
    when the folders or ``--out`` cannot be used (``--debug``: the traceback instead)."""
    parser = argparse.ArgumentParser(prog="sclc report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="run or grid folders")
    parser.add_argument("--out", required=True, help="folder for the PNG figures and report.html")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    try:
        page = write_report(args.folders, args.out)
    except (OSError, ValueError, csv.Error, yaml.YAMLError) as err:  # ReportError is a ValueError
        if args.debug:
            raise
        print(f"sclc report: {err}", file=sys.stderr)
        return 2
    print(f"sclc report: wrote {page}")
    return 0
