"""The 2-D diffusion and flow-matching recipes (Bertrand et al. Figs. 1 and 2), small variants."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_gaussian_recipes import run


def mean_of(rows: list[dict[str, float]], key: str, generations: range) -> float:
    return sum(r[key] for r in rows if int(r["generation"]) in generations) / len(generations)


@pytest.mark.slow  # 35 s; the same property by default on two moons (below)
def test_eight_gaussians_fully_synthetic_spreads_more_than_mixed(tmp_path: Path) -> None:
    short = ("--loop.generations", "3")
    replace = run(tmp_path, "eight_gaussians_ddpm", "replace", *short)
    mixed = run(tmp_path, "eight_gaussians_ddpm", "mixed", *short, "--loop.mode", "augment")
    # generation 0 learned the data: all eight modes, Fréchet far below that of N(0, I) (about 1.9)
    assert replace[0]["mode_coverage"] == 1.0 and replace[0]["frechet"] < 1.0
    assert replace[0] == mixed[0] | {k: v for k, v in replace[0].items() if k.startswith("time_")}
    assert [r["num_real"] for r in replace] == [2000, 0, 0, 0] and [r["num_real"] for r in mixed] == [2000] * 4
    # training only on its own samples blurs the modes; mixing in the real data does less so
    assert replace[-1]["mode_spread"] > mixed[-1]["mode_spread"]


def test_two_moons_fully_synthetic_drifts_more_than_mixed(tmp_path: Path) -> None:
    short = ("--loop.generations", "3")
    replace = run(tmp_path, "two_moons_cfm", "replace", *short)
    mixed = run(tmp_path, "two_moons_cfm", "mixed", *short, "--loop.mode", "augment")
    assert replace[0]["frechet"] < 0.3  # flow matching learned the moons at generation 0
    assert mean_of(replace, "frechet", range(1, 4)) > mean_of(mixed, "frechet", range(1, 4))
