"""``sclc bench compare A B``: two cards, task by task.

For every task both cards ran with the same digest and the same seeds, and every method that has
values in both: the per-seed differences of the metric (B − A, seeds paired), their mean and 95 %
Student *t* interval, and the difference of the scores. Tasks whose digests differ are listed as
not comparable, never compared.
"""

from __future__ import annotations

from typing import Any

from sclc_lightning.bench.score import mean_interval

__all__ = ["compare", "compare_text"]


def _pair(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    differences = [b - a for a, b in zip(first["values"], second["values"], strict=True)]
    mean, interval = mean_interval(differences)
    score = None
    if first.get("score") is not None and second.get("score") is not None:
        score = second["score"] - first["score"]
    return {"difference": mean, "interval": interval and interval.to_list(), "score_difference": score}


def compare(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """The per-task differences of ``second`` from ``first`` (two cards).

    Returns:
        ``{"tasks": {TASK: {"metric", "direction", "methods": {NAME: {"difference", "interval",
        "score_difference"}}}}, "not_comparable": {TASK: reason}}``.
    """
    tasks: dict[str, Any] = {}
    apart: dict[str, str] = {}
    for name in sorted(set(first["tasks"]) | set(second["tasks"])):
        a, b = first["tasks"].get(name), second["tasks"].get(name)
        if a is None or b is None:
            apart[name] = f"only in the {'second' if a is None else 'first'} card"
        elif a["digest"] != b["digest"]:
            apart[name] = f"another definition (digest {a['digest'][:15]}… against {b['digest'][:15]}…)"
        elif first["seeds"] != second["seeds"]:
            apart[name] = f"other seeds ({first['seeds']} against {second['seeds']}): nothing to pair"
        else:
            methods = {
                m: _pair(a["methods"][m], b["methods"][m])
                for m in a["methods"]
                if m in b["methods"] and "values" in a["methods"][m] and "values" in b["methods"][m]
            }
            tasks[name] = {"metric": a["metric"], "direction": a["direction"], "methods": methods}
    return {"tasks": tasks, "not_comparable": apart}


def compare_text(result: dict[str, Any]) -> str:
    """The comparison as lines of text."""
    lines = []
    for task, entry in result["tasks"].items():
        lines.append(f"{task}: {entry['metric']} ({entry['direction']} is better), second − first, seeds paired")
        for method, diff in entry["methods"].items():
            interval = diff["interval"]
            span = f" [{interval[0]:.4g}, {interval[1]:.4g}]" if interval else ""
            score = diff["score_difference"]
            said = f"; score {score:+.3f}" if score is not None else ""
            lines.append(f"  {method}: {diff['difference']:+.4g}{span}{said}")
    for task, why in result["not_comparable"].items():
        lines.append(f"{task}: not compared, {why}")
    return "\n".join(lines)
