"""The motion-physics recipe (Gillman et al. §6.3): the small CPU variant's arms, the paper size."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_gaussian_recipes import RECIPES, run

SMALL = ("--config", str(RECIPES / "small" / "motion_physics.yaml"), "--loop.generations", "2")


@pytest.mark.slow  # 80 s on the slower 2-core machine; the default suite keeps the same loop at a
# smaller size in tests/models/test_motion_diffusion.py (physics corrector, labelled motions, metrics)
def test_small_variant_runs_the_physics_and_uncorrected_arms(tmp_path: Path) -> None:
    physics = run(tmp_path, "motion_physics", "physics", *SMALL)
    plain = run(tmp_path, "motion_physics", "plain", *SMALL, "--loop.corrector", "null")
    for rows in (physics, plain):
        assert [int(r["generation"]) for r in rows] == [0, 1, 2]
        assert [r["num_synthetic"] for r in rows] == [0, 32, 32] and [r["num_real"] for r in rows] == [64] * 3
        assert [r["num_trained"] for r in rows] == [19200, 1024, 1024]
        for key in ("fid", "matching_accuracy", "diversity", "penetration", "floating", "skating", "joint_limit"):
            assert all(key in r for r in rows), key
    assert physics[0] == plain[0] | {k: v for k, v in physics[0].items() if k.startswith("time_")}
    # generation 0 learned the motion types: the classifier recognises its samples about as well as
    # held-out real motions (its own accuracy, 0.75 to 0.95 over classifier seeds, is the ceiling);
    # the physics arm spent time simulating
    assert physics[0]["real_matching_accuracy"] > 0.85
    assert physics[0]["matching_accuracy"] > physics[0]["real_matching_accuracy"] - 0.05
    assert physics[0]["real_penetration"] < 0.005
    assert all(p["time_correcting_s"] > 10 * q["time_correcting_s"] for p, q in zip(physics[1:], plain[1:]))
    figures = sorted(p.name for p in (tmp_path / "physics" / "samples").iterdir())
    assert figures == [f"generation_000{g}.png" for g in range(3)]


def test_paper_size_motion_recipe_instantiates(tmp_path: Path) -> None:
    from sclc_lightning.lightning_cli import SCLCCLI

    cli = SCLCCLI(["--config", str(RECIPES / "motion_physics.yaml"), "--run_dir", str(tmp_path)], run=False)
    model = cli.model
    assert type(model).__name__ == "MotionDiffusion" and model.hparams["width"] == 512 and model.hparams["layers"] == 8
    assert sum(p.numel() for p in model.parameters()) > 15e6
    loop = next(c for c in cli.trainer.callbacks if type(c).__name__ == "SelfConsumingLoop")
    assert (loop.generations, loop.images_per_generation, loop.initial_images) == (50, 1024, 4992)
    assert type(loop.corrector).__name__ == "PhysicsCorrector" and loop.corrector.strength == float("inf")
    metrics = next(c for c in cli.trainer.callbacks if type(c).__name__ == "MotionMetrics")
    assert metrics.num_samples == 546 and cli.datamodule.n_test == 546


def test_large_set_overrides_of_the_header(tmp_path: Path) -> None:
    from sclc_lightning.lightning_cli import SCLCCLI

    large = ["--data.init_args.n", "2794", "--loop.synthetic_fraction", "0.1"]
    large += ["--loop.initial_images", "200000", "--loop.images_per_generation", "40000"]
    cli = SCLCCLI(["--config", str(RECIPES / "motion_physics.yaml"), "--run_dir", str(tmp_path), *large], run=False)
    loop = next(c for c in cli.trainer.callbacks if type(c).__name__ == "SelfConsumingLoop")
    batch = cli.datamodule.batch_size
    assert cli.datamodule.n == 2794 and loop.synthetic_fraction == 0.1 and loop.generations == 50
    assert (loop.initial_images // batch, loop.images_per_generation // batch) == (3125, 625)  # paper: batches
