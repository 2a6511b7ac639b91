"""Counts, modes and the fixed training budget of each generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import GaussianModel, fit, gaussian_points, loader, manifest

from sclc_lightning import SelfConsumingLoop


@pytest.mark.parametrize(
    ("mode", "extra", "expected"),
    [
        ("augment", {}, [(53, 0), (53, 37), (53, 37), (53, 37)]),
        ("accumulate", {}, [(53, 0), (53, 37), (53, 74), (53, 111)]),
        ("accumulate", {"mode_kwargs": {"max_synthetic": 50}}, [(53, 0), (53, 37), (53, 50), (53, 50)]),
        ("replace", {}, [(53, 0), (0, 37), (0, 37), (0, 37)]),
        ("fresh", {"mode_kwargs": {"real_per_generation": 20}}, [(20, 0), (20, 14), (20, 14), (20, 14)]),
    ],
)
def test_modes_build_the_mixed_set(tmp_path: Path, mode: str, extra: dict[str, Any], expected: list[Any]) -> None:
    loop = SelfConsumingLoop(0.7, 3, images_per_generation=40, mode=mode, output_dir=tmp_path / "s", **extra)
    t = fit(tmp_path, GaussianModel(), loader(gaussian_points(53)), loop)
    assert [(r.num_real, r.num_synthetic) for r in loop.history] == expected
    counts = [g["count"] for g in manifest(tmp_path / "s")["generations"]]
    assert counts == [expected[1][1] if mode != "fresh" else 14] * 3  # floor(0.7 * n) every generation
    assert t.current_epoch == 4 and t.global_step == 4 * 4  # stopped by itself after generation 3


def test_fresh_mode_draws_new_real_subsets(tmp_path: Path) -> None:
    points = gaussian_points(40)
    model = GaussianModel(record=True)
    loop = SelfConsumingLoop(
        0.0,
        2,
        images_per_generation=10,
        mode="fresh",
        mode_kwargs={"real_per_generation": 10},
        output_dir=tmp_path / "s",
    )
    fit(tmp_path, model, loader(points), loop)
    seen = [set(map(tuple, torch.cat(model.seen[i : i + 1]).tolist())) for i in range(3)]
    assert all(len(s) == 10 for s in seen)  # one pass over each 10-point subset
    assert seen[0] != seen[1] and seen[1] != seen[2]


def test_synthetic_fraction_above_one(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(1.5, 1, images_per_generation=20, output_dir=tmp_path / "s")
    fit(tmp_path, GaussianModel(), loader(gaussian_points(31)), loop)
    assert loop.history[1].num_synthetic == 46  # floor(1.5 * 31)


def test_fixed_budget_and_synthetic_share(tmp_path: Path) -> None:
    real = gaussian_points(50)
    model = GaussianModel(record=True)
    # 50 real + 25 synthetic = 75 items; 150 samples = two whole passes.
    loop = SelfConsumingLoop(0.5, 2, images_per_generation=150, output_dir=tmp_path / "s")
    fit(tmp_path, model, loader(real, batch_size=10), loop)
    per_gen = 15
    real_rows = {tuple(r) for r in real.tolist()}
    for g in range(3):
        seen = torch.cat(model.seen[g * per_gen : (g + 1) * per_gen])
        assert seen.shape[0] == 150
        n_real = sum(tuple(r) in real_rows for r in seen.tolist())
        assert n_real == (150 if g == 0 else 100)  # share of synthetic seen = 25/75 exactly


def test_budget_rounds_to_whole_batches_with_warning(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 4, images_per_generation=35, output_dir=tmp_path / "s")
    with pytest.warns(UserWarning, match="35 training samples .* training on 30") as caught:
        fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    assert [r.num_trained for r in loop.history] == [30] * 5
    said = [w for w in caught if "not a whole number of batches" in str(w.message)]
    assert len(said) == 1 and "said once for every generation" in str(said[0].message)  # not 5 times


def test_one_pass_when_budget_is_none(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.4, 2, images_per_generation=None, output_dir=tmp_path / "s")
    t = fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    assert [r.num_trained for r in loop.history] == [50, 70, 70]
    assert t.global_step == 5 + 7 + 7


def test_initial_images_zero_skips_generation_zero(tmp_path: Path) -> None:
    model = GaussianModel()
    loop = SelfConsumingLoop(0.5, 2, images_per_generation=20, initial_images=0, output_dir=tmp_path / "s")
    t = fit(tmp_path, model, loader(gaussian_points(50)), loop)
    assert [r.generation for r in loop.history] == [1, 2]
    assert t.global_step == 4


def test_initial_images_sets_generation_zero_budget(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20, initial_images=100, output_dir=tmp_path / "s")
    t = fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    assert [r.num_trained for r in loop.history] == [100, 20] and t.global_step == 12


def test_a_generation_cut_short_by_max_steps_counts_what_it_trained(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 3, images_per_generation=80, output_dir=tmp_path / "s")
    with pytest.warns(UserWarning, match="max_steps=12"):
        t = fit(tmp_path, GaussianModel(), loader(gaussian_points(50), batch_size=10), loop, max_steps=12)
    # 8 batches of 10 in generation 0, then 4 of generation 1's 8 before max_steps ends the fit.
    assert [(r.generation, r.num_trained) for r in loop.history] == [(0, 80), (1, 40)] and t.global_step == 12
