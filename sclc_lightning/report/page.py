"""``report.html``: the runs table, every figure with its caption and each run's sample pictures
across generations, embedded so that the page is self-contained; the figures and ``summary.csv``
beside it."""

from __future__ import annotations

import base64
import difflib
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from sclc_lightning._files import atomic_write
from sclc_lightning.report.figures import figure_name, plot_metric
from sclc_lightning.report.reading import find_runs
from sclc_lightning.report.runs import ReportError, ReportWarning, Run, _settings, group_runs
from sclc_lightning.report.summary import write_summary

__all__ = ["write_report"]

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


def _figure(metric: str, groups: dict[str, list[Run]], out: Path, taken: set[str], scale: str) -> dict[str, str]:
    """Draw ``metric``'s figure into ``out``; its entry in the page."""
    path = out / figure_name(metric, taken)
    if path.resolve().parent != out.resolve():  # cannot happen with the names above; never write outside
        raise ValueError(f"The figure of metric {metric!r} would be written outside {out}.")
    theories = plot_metric(metric, groups, path, scale)
    drawn = [name for name, runs in groups.items() if any(r.series(metric) for r in runs)]
    shown = f"{metric} against the generation, one line per group of runs ({len(drawn)} groups), the mean over seeds"
    caption = f"{shown}, with a band of ± 1 standard deviation where a group has several seeds."
    if theories:
        caption += " Dashed: the theory's prediction (" + "; ".join(theories) + ")."
    return {"metric": metric, "data": _base64(path), "alt": shown, "caption": caption}


def _left_out(run: Run, groups: dict[str, list[Run]]) -> str:
    """The runs table's group of a run that :func:`group_runs` left out: the run of its group
    with the same seeds that was kept."""
    for label, members in groups.items():
        for kept in members:
            if kept.seeds == run.seeds and _settings(kept) == _settings(run):
                return f"{label} (left out: the same seeds as {kept.path})"
    return "left out"


def _samples(run: Run) -> dict[str, object] | None:
    """The run's sample pictures (the first, middle and last generation's), for the page."""
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
    return {"path": str(run.path), "pictures": pictures} if pictures else None


def _check_scales(scales: Mapping[str, str], metrics: Sequence[str], runs: Sequence[Run]) -> None:
    """Refuse a scale that is not ``log``/``linear``/``auto`` or a metric no run logged (with the
    one meant); warn of a logarithmic axis over values that are not all positive."""
    for metric, scale in scales.items():
        if scale not in ("auto", "log", "linear"):
            raise ReportError(f"The scale of metric {metric!r} must be 'auto', 'log' or 'linear', got {scale!r}.")
        if metric not in metrics:
            lowered = {m.lower(): m for m in metrics}
            near = difflib.get_close_matches(metric.lower(), list(lowered), n=1)
            hint = f" (did you mean {lowered[near[0]]!r}?)" if near else ""
            raise ReportError(f"No run logged the metric {metric!r}{hint}; the runs logged {', '.join(metrics)}.")
        values = [v for r in runs for v in r.series(metric).values()]
        if scale == "log" and any(v <= 0 for v in values):
            warnings.warn(
                ReportWarning(f"{metric} has values <= 0: its logarithmic axis leaves them out."), stacklevel=2
            )


def write_report(folders: Sequence[str | Path], out: str | Path, scales: Mapping[str, str] | None = None) -> Path:
    """Write the figures, ``summary.csv`` and ``report.html`` for the runs under ``folders``;
    returns the page. ``scales``: the vertical axis of some metrics' figures, ``"log"`` or
    ``"linear"`` (the others: logarithmic when their values span more than three decades).

    Every value in the page is HTML-escaped (a Jinja2 template with autoescape), and the figures'
    file names are made from the metric names safely, inside ``out``.

    Raises:
        FileNotFoundError: a folder does not exist, or holds no run.
        ReportError: ``out`` is inside a run's synthetic data, a ``config.yaml`` is not a
            mapping of settings, a model declares a theory that is not registered, or ``scales``
            names a metric no run logged.
    """
    from jinja2 import Environment

    runs = find_runs(folders)
    out = Path(out)
    _refuse_inside_run_data(out)
    metrics = sorted(set().union(*(r.metrics() for r in runs)))
    scales = dict(scales or {})
    _check_scales(scales, metrics, runs)  # refused before anything is written
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    label_of = {id(r): label for label, members in groups.items() for r in members}
    taken: set[str] = set()
    figures = [_figure(metric, groups, out, taken, scales.get(metric, "auto")) for metric in metrics]
    table = [
        {
            "path": str(r.path),
            "group": label_of[id(r)] if id(r) in label_of else _left_out(r, groups),
            "seed": r.loop.get("seed", ""),
            "last": r.last_generation(),
        }
        for r in runs
    ]
    samples = [found for found in map(_samples, runs) if found is not None]
    write_summary(groups, metrics, out / "summary.csv")
    page = out / "report.html"
    template = Environment(autoescape=True).from_string(_PAGE)
    atomic_write(page, template.render(runs=table, groups=len(groups), figures=figures, samples=samples))
    return page
