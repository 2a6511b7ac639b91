"""The points of a grid: the cartesian product of ``--set KEY=V1,V2`` axes and seeds, with a
readable, unique name for each."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = ["GridPoint", "check_seeds", "expand_grid", "gpu_slots", "parse_seeds", "short_keys", "visible_gpus"]

#: Longest run name; longer ones are cut and end with a digest of the point's values.
MAX_NAME = 120


@dataclass(frozen=True)
class GridPoint:
    """One run of a grid: its name, its overrides and its seed, and (a point of a method axis)
    the method's name and the YAML layer of its settings, read after the recipe files."""

    name: str
    values: tuple[tuple[str, str], ...]
    seed: int | None
    extra: tuple[str, ...] = field(default=())
    method: str | None = None
    layer: str | None = None

    def fit_args(self, configs: Sequence[str], run_dir: Path, ckpt_path: Path | None = None) -> list[str]:
        """Arguments of ``sclc fit`` for this point: the recipe files in order (later ones layered
        on earlier ones), then the point's values (``ckpt_path``: resume from it)."""
        args = ["fit"]
        for config in [configs] if isinstance(configs, str) else configs:
            args += ["--config", config]
        if self.layer is not None:
            args += ["--config", self.layer]
        args += ["--run_dir", str(run_dir)]
        for key, value in self.values:
            args += [f"--{key}", value]
        if self.seed is not None:
            args += ["--seed_everything", str(self.seed), "--loop.seed", str(self.seed)]
        args += list(self.extra)
        if ckpt_path is not None:
            args += ["--ckpt_path", str(ckpt_path)]
        return args


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"0,3,5"`` or ``"7"`` to a list of seeds.

    Examples:
        >>> parse_seeds("0-2,7")
        [0, 1, 2, 7]
    """
    seeds: list[int] = []
    for part in text.split(","):
        if re.fullmatch(r"\d+-\d+", part.strip()):
            low, high = (int(x) for x in part.split("-"))
            if high < low:
                raise ValueError(f"`--seeds` range {part!r} is empty.")
            seeds += range(low, high + 1)
        elif part.strip().isdigit():
            seeds.append(int(part))
        else:
            raise ValueError(f"`--seeds` must look like 0-9 or 0,3,5, got {text!r}.")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"`--seeds` {text!r} names a seed twice.")
    return seeds


def check_seeds(seeds: object) -> list[int]:
    """Seeds given as text (:func:`parse_seeds`) or as a sequence of distinct integers >= 0.

    Raises:
        ValueError: naming what is wrong.

    Examples:
        >>> check_seeds("0-2"), check_seeds((4, 1))
        ([0, 1, 2], [4, 1])
    """
    if isinstance(seeds, str):
        return parse_seeds(seeds)
    if not isinstance(seeds, (list, tuple, range)) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds
    ):
        raise ValueError(f"`seeds` must be text like '0-4' or a list of integers >= 0, got {seeds!r}.")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"`seeds` {list(seeds)} names a seed twice.")
    return list(seeds)


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """The shortest ending of each key (``init_args`` left out) that no other key shares.

    Examples:
        >>> list(short_keys(["loop.synthetic_fraction", "model.init_args.dim", "data.init_args.dim"]).values())
        ['synthetic_fraction', 'model.dim', 'data.dim']
    """
    parts = {key: [p for p in key.split(".") if p != "init_args"] or [key] for key in keys}

    def ending(key: str, length: int) -> str:
        return ".".join(parts[key][-length:])

    short = {}
    for key in keys:
        length = 1
        while length < len(parts[key]) and any(
            ending(other, length) == ending(key, length) for other in keys if other != key
        ):
            length += 1
        short[key] = ending(key, length)
    return short


def _name(parts: list[str], values: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.=+-]", "-", "_".join(parts) or "run")
    if len(name) > MAX_NAME:
        name = name[: MAX_NAME - 9] + "-" + hashlib.sha256(values.encode()).hexdigest()[:8]
    return name


def expand_grid(
    sets: Sequence[str],
    seeds: Sequence[int] | None,
    extra: Sequence[str] = (),
    methods: Mapping[str, str] | None = None,
) -> list[GridPoint]:
    """The cartesian product of the methods (``{name: layer file}``, an axis of its own), the
    ``KEY=V1,V2`` settings and the seeds.

    Raises:
        ValueError: a setting is not ``KEY=V1,V2``, a key is set twice, or a value is repeated.

    Examples:
        >>> [p.name for p in expand_grid(["loop.synthetic_fraction=0.5,1"], [0])]
        ['synthetic_fraction=0.5_seed=0', 'synthetic_fraction=1_seed=0']
        >>> [p.name for p in expand_grid(["model.init_args.dim=2", "data.init_args.dim=2"], None)]
        ['model.dim=2_data.dim=2']
        >>> [p.name for p in expand_grid([], [0, 1], methods={"ot": "ot.yaml"})]
        ['method=ot_seed=0', 'method=ot_seed=1']
    """
    axes: list[list[tuple[str, str]]] = []
    keys: list[str] = []
    for item in sets:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values:
            raise ValueError(f"`--set` must look like KEY=V1,V2, got {item!r}.")
        if key in keys:
            raise ValueError(f"`--set` gives {key!r} twice; give its values once: {key}=V1,V2.")
        axis = [(key, v.strip()) for v in values.split(",")]
        if len({v for _, v in axis}) != len(axis):
            raise ValueError(f"`--set {item}` repeats a value.")
        keys.append(key)
        axes.append(axis)
    short = short_keys(keys)
    points = []
    method_axis: list[tuple[str | None, str | None]] = list(methods.items()) if methods else [(None, None)]
    for method, layer in method_axis:
        for combo in itertools.product(*axes):
            for seed in seeds if seeds else [None]:
                parts = [f"{short[k]}={v}" for k, v in combo] + ([f"seed={seed}"] if seed is not None else [])
                parts = ([f"method={method}"] if method is not None else []) + parts
                name = _name(parts, repr((method, combo, seed)))
                points.append(GridPoint(name, tuple(combo), seed, tuple(extra), method, layer))
    # Values that differ only in characters a folder name cannot hold ("a/b", "a:b").
    counts: dict[str, int] = {}
    for point in points:
        counts[point.name] = counts.get(point.name, 0) + 1
    return [
        point
        if counts[point.name] == 1
        else replace(
            point,
            name=f"{point.name[: MAX_NAME - 9]}-"
            + hashlib.sha256(repr((point.method, point.values, point.seed)).encode()).hexdigest()[:8],
        )
        for point in points
    ]


def gpu_slots(gpus: Sequence[str], jobs: int) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` of each of ``jobs`` workers: equal groups of ``gpus``, or
    single GPUs shared round-robin when there are fewer GPUs than workers.

    Examples:
        >>> gpu_slots(["0", "1", "2", "3"], 2)
        ['0,1', '2,3']
        >>> gpu_slots(["0", "1"], 3)
        ['0', '1', '0']
    """
    if not gpus:
        return []
    if len(gpus) >= jobs:
        per = len(gpus) // jobs
        return [",".join(gpus[i * per : (i + 1) * per]) for i in range(jobs)]
    return [gpus[i % len(gpus)] for i in range(jobs)]


def visible_gpus(spec: str, jobs: int) -> list[str]:
    """The GPUs ``--gpus`` names: ``auto`` (the visible ones, with several workers), ``none`` or a list."""
    if spec == "none" or (spec == "auto" and jobs == 1):
        return []
    if spec != "auto":
        if not re.fullmatch(r"\d+(,\d+)*", spec):
            raise ValueError(f"`--gpus` must be auto, none or a list like 0,1,3; got {spec!r}.")
        return spec.split(",")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]
