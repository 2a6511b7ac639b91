"""Figures: each metric against the generation, one line per group of runs (the mean over seeds
with a band of one standard deviation), the theory's curve dashed in the group's colour, whole
generations on the axis and a legend that names each method as a person would
(``"kmeans, γ = 1; λ = 0.5, augment (3 seeds)"``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sclc_lightning._files import atomic_path
from sclc_lightning.report.closed_forms import stability_note
from sclc_lightning.report.methods import method_label, number_label
from sclc_lightning.report.runs import Run
from sclc_lightning.report.summary import mean_std
from sclc_lightning.report.theory import _theory_curve

__all__ = ["figure_name", "legend_label", "plot_metric"]

# The most generations a figure draws per group.
_MAX_POINTS = 20_000


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


def legend_label(name: str, runs: list[Run]) -> str:
    """How a figure's legend names the group ``name`` of ``runs``: the method (the corrector and
    its γ, :func:`~sclc_lightning.report.methods.method_label`), then λ and the mixing mode, then
    the settings that tell the group apart from others, and how many distinct seeds it averages
    (runs of one seed count once; runs recording no seed count as runs).

    Examples:
        >>> from pathlib import Path
        >>> loop = {"synthetic_fraction": 0.5, "mode": "augment", "corrector": "kmeans",
        ...         "corrector_kwargs": {"strength": 1.0, "num_clusters": 8}}
        >>> runs = [Run(Path(f"r{seed}"), {"loop": {**loop, "seed": seed}}, []) for seed in (0, 1)]
        >>> legend_label("λ=0.5 γ=1.0 augment kmeans num_clusters=8", runs)
        'kmeans, γ = 1; λ = 0.5, augment; num_clusters=8 (2 seeds)'
        >>> legend_label("λ=0.5 γ=1.0 augment kmeans num_clusters=8", [runs[0], runs[0]])
        'kmeans, γ = 1; λ = 0.5, augment; num_clusters=8 (1 run)'
    """
    return f"{_method_and_mixing(name, runs)} {_count(runs)}"


def _method_and_mixing(name: str, runs: list[Run]) -> str:
    """The legend's name of a group without its count of runs."""
    loop = runs[0].loop
    fraction, mode = loop.get("synthetic_fraction"), loop.get("mode")
    mixing = ", ".join(
        part
        for part in (None if fraction is None else f"λ = {number_label(fraction)}", _mode_label(mode))
        if part is not None
    )
    base = runs[0].group
    extra = name[len(base) :].strip() if name.startswith(base) else name
    return "; ".join(part for part in (method_label(loop), mixing, extra) if part)


def _count(runs: list[Run]) -> str:
    """``(3 seeds)``: the distinct seeds of ``runs``, or ``(2 runs)`` where some record no seed."""
    seeds = [run.seeds for run in runs]
    if None in seeds:
        return f"({len(runs)} runs)" if len(runs) > 1 else "(1 run)"
    distinct = len(set(seeds))
    return f"({distinct} seeds)" if distinct > 1 else "(1 run)"


def _mode_label(mode: Any) -> str | None:
    if isinstance(mode, dict):  # a class path in config.yaml
        return str(mode.get("class_path", "custom mixing")).rsplit(".", 1)[-1]
    return None if mode is None else str(mode)


def _text(text: str) -> str:
    """``text`` shown as it is, never as matplotlib mathtext (a metric or setting named
    ``cost $a$``)."""
    return text.replace("$", r"\$")


def _log_scale(values: list[float]) -> bool:
    """Whether a metric spans more than three decades of positive values (a divergence, a
    collapsing variance): then its figure has a logarithmic axis.

    Examples:
        >>> _log_scale([0.007, 17000.0]), _log_scale([0.1, 50.0]), _log_scale([-1.0, 5000.0])
        (True, False, False)
    """
    return bool(values) and min(values) > 0 and max(values) > 1000 * min(values)


def _draw_group(ax: Any, metric: str, name: str, runs: list[Run]) -> str | None:
    """Draw one group's line (and band, and theory curve); the theory curve's caption text."""
    series = [r.series(metric) for r in runs]
    generations = sorted({g for values in series for g in values})
    if not generations:
        return None
    # a figure is a few hundred pixels wide: beyond 20,000 generations every k-th is drawn
    generations = generations[:: max(1, len(generations) // _MAX_POINTS)]
    spread = [mean_std([values[g] for values in series if g in values]) for g in generations]
    means, stds = [m for m, _ in spread], [s for _, s in spread]
    label = legend_label(name, runs)
    note = stability_note(runs)
    if note is not None:
        label += f"\n  {note}"
    line = ax.plot(generations, means, label=_text(label))[0]
    if len(runs) > 1:
        below, above = [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)]
        ax.fill_between(generations, below, above, color=line.get_color(), alpha=0.2)
    theory = _theory_curve(metric, runs)
    if theory is None:
        return None
    # named with its group: several groups may draw the same theory, each in its own colour
    shown = f"{theory[0]}: {_method_and_mixing(name, runs)}"
    ax.plot(theory[1], theory[2], linestyle="--", color=line.get_color(), label=_text(shown))
    return f"{name}: {theory[0]}"


def plot_metric(metric: str, groups: dict[str, list[Run]], path: Path, scale: str = "auto") -> list[str]:
    """Draw ``metric`` against the generation, one line per group, into ``path``; the theory
    curves drawn over it, as ``"group: curve"``. ``scale``: ``"log"`` or ``"linear"`` for the
    vertical axis, ``"auto"`` a logarithmic one when the values span more than three decades."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = [_draw_group(ax, metric, name, runs) for name, runs in sorted(groups.items())]
    values = [v for runs in groups.values() for r in runs for v in r.series(metric).values()]
    if scale == "log" or (scale == "auto" and _log_scale(values)):
        ax.set_yscale("log")
    shown = _text(metric)
    ax.set(xlabel="generation", ylabel=shown, title=shown)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # generations are whole: no 0.5, 1.5
    labels = ax.get_legend_handles_labels()[1]
    if len(labels) > 4 or max((len(label) for label in labels), default=0) > 60:
        # many or long labels: below the axes, where they cover no curve and are never cut off
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    else:
        ax.legend(fontsize=7)
        fig.tight_layout()  # (with the legend below, the tight bounding box makes the room)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)
    return [theory for theory in drawn if theory is not None]
