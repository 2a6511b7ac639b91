"""The bench's figures and ``bench.html``: a tasks × methods heat map of the scores with their
intervals, and per task the metric against the generation for every method (the mean over
seeds), all in ``<out>/figures/`` and in one self-contained page."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from sclc_lightning._files import atomic_write
from sclc_lightning.bench.card import point_rows, read_metric

__all__ = ["write_page"]


def _number(value: float) -> str:
    """Two decimals, or three significant digits for a number of 100 or more.

    Examples:
        >>> _number(0.8712), _number(-5907018.97)
        ('0.87', '-5.91e+06')
    """
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.3g}"


def _cell(arm: dict[str, Any]) -> str:
    if arm.get("score") is None:
        return {"skipped": "skipped", "failed": "failed"}.get(arm.get("status", ""), "n/a")
    low, high = arm["score_interval"]
    return f"{_number(arm['score'])}\n[{_number(low)}, {_number(high)}]"


def heat_map(card: dict[str, Any], path: Path) -> Path:
    """The tasks × methods heat map of scores (grey: no score), each cell with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks, methods = list(card["tasks"]), list(card["methods"])
    found = [[card["tasks"][t]["methods"][m].get("score") for m in methods] for t in tasks]
    scores = np.array([[math.nan if s is None else s for s in row] for row in found], dtype=float)
    figure, axes = plt.subplots(figsize=(1.3 * len(methods) + 2.5, 0.7 * len(tasks) + 1.8))
    colours = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#dddddd")
    image = axes.imshow(np.ma.masked_invalid(scores), cmap=colours, vmin=-0.5, vmax=1.5, aspect="auto")
    for i, task in enumerate(tasks):
        for j, method in enumerate(methods):
            axes.text(j, i, _cell(card["tasks"][task]["methods"][method]), ha="center", va="center", fontsize=7)
    axes.set_xticks(range(len(methods)), methods, rotation=35, ha="right")
    axes.set_yticks(range(len(tasks)), tasks)
    figure.colorbar(image, ax=axes, label="score (1: real data only, 0: uncorrected)")
    axes.set_title(f"sclc bench, suite {card['suite']}, seeds {card['seeds']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return path


def task_curves(card: dict[str, Any], task: str, out: Path, path: Path) -> Path:
    """The task's metric against the generation, one line per method (mean over its seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entry = card["tasks"][task]
    rows = point_rows(out, task)
    figure, axes = plt.subplots(figsize=(6.5, 4))
    for method, arm in entry["methods"].items():
        if arm.get("status") != "ok":
            continue
        runs = [read_metric(out / "runs" / task / rows[(method, s)]["name"], entry["metric"]) for s in card["seeds"]]
        generations = sorted(set.intersection(*(set(r) for r in runs)))
        means = [sum(r[g] for r in runs) / len(runs) for g in generations]
        style = "--" if method in ("real_only", "uncorrected") else "-"
        axes.plot(generations, means, style, label=method)
    axes.axvline(entry["generation"], color="grey", linewidth=0.8)
    axes.set_xlabel("generation")
    axes.set_ylabel(f"{entry['metric']} ({entry['direction']} is better)")
    axes.set_title(task)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return path


def _table(card: dict[str, Any]) -> str:
    methods = list(card["methods"])
    head = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
    lines = [f"<table><tr><th>task</th><th>metric</th>{head}</tr>"]
    for task, entry in card["tasks"].items():
        cells = []
        for method in methods:
            arm = entry["methods"][method]
            title = html.escape(arm.get("reason") or "", quote=True)
            cells.append(f'<td title="{title}">{html.escape(_cell(arm)).replace(chr(10), "<br>")}</td>')
        note = "" if entry.get("collapse") else f"<br><small>{html.escape(entry.get('reason') or '')}</small>"
        metric = f"{entry['metric']} at generation {entry['generation']} ({entry['direction']} is better)"
        lines.append(f"<tr><td>{html.escape(task)}{note}</td><td>{html.escape(metric)}</td>{''.join(cells)}</tr>")
    total = "".join(f"<td>{html.escape(_cell(card['aggregate'][m])).replace(chr(10), '<br>')}</td>" for m in methods)
    lines.append(f"<tr><th>suite</th><td>mean over scored tasks</td>{total}</tr></table>")
    return "\n".join(lines)


def write_page(card: dict[str, Any], out: Path) -> Path:
    """Write the figures and ``<out>/bench.html``; the page's path."""
    folder = out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    pictures = [heat_map(card, folder / "scores.png")]
    pictures += [task_curves(card, task, out, folder / f"{task}.png") for task in card["tasks"]]
    images = "\n".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}"'
        f' alt="{html.escape(p.stem)}"></figure>'
        for p in pictures
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>sclc bench</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px;text-align:center;font-size:13px}img{max-width:100%}</style></head><body>"
        f"<h1>sclc bench: suite {html.escape(str(card['suite']))}</h1>"
        f"<p>Seeds {html.escape(str(card['seeds']))}. A score is the method's held-out metric placed between"
        " its two reference arms (1: real data only, 0: the uncorrected loop, below 0: worse than doing nothing),"
        " with its 95% interval over the seeds (Fieller, seeds paired). The card is bench.json.</p>"
        f"{_table(card)}{images}</body></html>\n"
    )
    path = out / "bench.html"
    atomic_write(path, page)
    return path
