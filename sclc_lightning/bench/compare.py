"""``sclc bench compare A B``: two cards, task by task.

For every task both cards ran with the same digest, over the seeds both ran (at least 2), and every
method that has values in both: the per-seed differences of the metric (B − A, seeds paired), their
mean and 95 % Student *t* interval, and the difference of the scores (each card's own, over its
own seeds). Tasks whose digests differ are listed as
not comparable, never compared.
"""

from __future__ import annotations

import math
from typing import Any

from sclc_lightning.bench.score import mean_interval

__all__ = ["compare", "compare_text"]


def _by_seed(card: dict[str, Any], task: str, method: str) -> dict[int, float]:
    """A method's values on a task by seed, checked.

    Raises:
        ValueError: naming the card's task and method: not one finite value per seed.
    """
    values = card["tasks"][task]["methods"][method]["values"]
    seeds = card["seeds"]
    if not isinstance(values, list) or len(values) != len(seeds):
        raise ValueError(f"A card's {task}/{method} has {values!r} for the seeds {seeds}: not one value per seed.")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise ValueError(f"A card's {task}/{method} holds a value that is not a finite number: {values!r}.")
    return dict(zip(seeds, values, strict=True))


def _pair(
    first: dict[int, float], second: dict[int, float], seeds: list[int], scores: tuple[Any, Any]
) -> dict[str, Any]:
    differences = [second[s] - first[s] for s in seeds]
    mean, interval = mean_interval(differences)
    score = None if None in scores else scores[1] - scores[0]
    return {"difference": mean, "interval": interval and interval.to_list(), "score_difference": score}


def _task(first: dict[str, Any], second: dict[str, Any], name: str, seeds: list[int]) -> dict[str, Any]:
    a, b = first["tasks"][name], second["tasks"][name]
    methods = {}
    for method in sorted(set(a["methods"]) & set(b["methods"])):
        if a["methods"][method].get("values") is None or b["methods"][method].get("values") is None:
            continue
        scores = (a["methods"][method].get("score"), b["methods"][method].get("score"))
        methods[method] = _pair(_by_seed(first, name, method), _by_seed(second, name, method), seeds, scores)
        # the same name may be another method (settings, or a corrector's code): said, not hidden
        records = (first.get("methods", {}).get(method), second.get("methods", {}).get(method))
        methods[method]["same_definition"] = records[0] == records[1]
    return {"metric": a["metric"], "direction": a["direction"], "seeds": seeds, "methods": methods}


def compare(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """The per-task differences of ``second`` from ``first`` (two cards), over the seeds both ran.

    Returns:
        ``{"tasks": {TASK: {"metric", "direction", "seeds", "methods": {NAME: {"difference",
        "interval", "score_difference", "same_definition"}}}}, "not_comparable": {TASK: reason}}``;
        ``same_definition`` is false where the two cards record other settings (or another
        corrector's code) under the method's name.

    Raises:
        ValueError: a card's values are not one finite number per seed.
    """
    tasks: dict[str, Any] = {}
    apart: dict[str, str] = {}
    seeds = sorted(set(first["seeds"]) & set(second["seeds"]))
    for name in sorted(set(first["tasks"]) | set(second["tasks"])):
        a, b = first["tasks"].get(name), second["tasks"].get(name)
        if a is None or b is None:
            apart[name] = f"only in the {'second' if a is None else 'first'} card"
        elif a["digest"] != b["digest"]:
            apart[name] = f"another definition (digest {a['digest'][:15]}… against {b['digest'][:15]}…)"
        elif len(seeds) < 2:
            apart[name] = f"fewer than 2 seeds in common ({first['seeds']} against {second['seeds']}): nothing to pair"
        else:
            tasks[name] = _task(first, second, name, seeds)
    return {"tasks": tasks, "not_comparable": apart}


def compare_text(result: dict[str, Any]) -> str:
    """The comparison as lines of text."""
    lines = []
    for task, entry in result["tasks"].items():
        lines.append(
            f"{task}: {entry['metric']} ({entry['direction']} is better), second − first, seeds {entry['seeds']} paired"
        )
        for method, diff in entry["methods"].items():
            interval = diff["interval"]
            span = f" [{interval[0]:.4g}, {interval[1]:.4g}]" if interval else ""
            score = diff["score_difference"]
            said = f"; score {score:+.3f}" if score is not None else ""
            other = "" if diff.get("same_definition", True) else " (the cards define it differently)"
            lines.append(f"  {method}: {diff['difference']:+.4g}{span}{said}{other}")
    for task, why in result["not_comparable"].items():
        lines.append(f"{task}: not compared, {why}")
    return "\n".join(lines)
