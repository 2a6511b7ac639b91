"""λ schedules: the synthetic fraction may change with the generation (a list, a function, a
registered schedule); each generation samples only what it uses, the plan of steps follows, the
schedule is recorded and a resume with another is refused."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import GaussianModel, fit, gaussian_points, loader, manifest

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.cli import main
from sclc_lightning.loop.run import LoopState, check_resume
from sclc_lightning.loop.steps import planned_batches, planned_steps
from sclc_lightning.mixing import ReplacePolicy
from sclc_lightning.mixing.schedule import resolve_schedule

RECIPES = Path(__file__).parents[2] / "recipes"


def growing(generation: int) -> float:
    return 0.25 * generation


def test_schedules_resolve_to_one_fraction_per_generation() -> None:
    assert resolve_schedule([0.5, 1, 2], 3) == (0.5, 1.0, 2.0)
    assert resolve_schedule(f"{__name__}:growing", 4) == (0.25, 0.5, 0.75, 1.0)
    assert resolve_schedule({"name": "linear", "start": 1.0, "end": 0.0}, 3) == (1.0, 0.5, 0.0)
    with pytest.raises(ValueError, match=r"one value per generation 1..3 \(3\), got 2"):
        resolve_schedule([0.5, 1], 3)
    with pytest.raises(ValueError, match=r"at generation 2 must be a finite number >= 0, got -1"):
        resolve_schedule([0.5, -1], 2)
    with pytest.raises(ValueError, match=r"names the schedule 'cubic'; registered: \[.*'linear'"):
        resolve_schedule({"name": "cubic"}, 2)


class SampleHalf(ReplacePolicy):
    """A policy that uses only half of what λ_t would sample."""

    deciding = ("keep_real",)

    def num_to_sample(self, generation: int, proposed: int) -> int:
        return proposed // 2


def _run(tmp_path: Path, fraction: Any, mode: Any = "accumulate", **kwargs: Any) -> tuple[SelfConsumingLoop, Any]:
    loop = SelfConsumingLoop(
        fraction, 4, images_per_generation=None, mode=mode, output_dir=tmp_path / "s", sample_batch_size=7, **kwargs
    )
    trainer = fit(tmp_path, GaussianModel(), loader(gaussian_points(40)), loop)
    return loop, trainer


def test_each_generation_samples_its_share_and_the_steps_were_planned(tmp_path: Path) -> None:
    loop, trainer = _run(tmp_path, [0.25, 0.5, 1.0, 2.0])
    records = manifest(tmp_path / "s")["generations"]
    assert [g["count"] for g in records] == [10, 20, 40, 80]
    assert [r.num_synthetic for r in loop.history] == [0, 10, 30, 70, 150]  # accumulated
    assert loop.fingerprint()["synthetic_fraction"] == [0.25, 0.5, 1.0, 2.0]
    batches = planned_batches(loop.config, real_size=40, batch_size=10, world_size=1)
    assert planned_steps(batches, 1) == trainer.global_step  # the schedule was planned for


def test_a_policy_samples_only_what_it_uses(tmp_path: Path) -> None:
    _run(tmp_path, f"{__name__}:growing", mode=SampleHalf())
    assert [g["count"] for g in manifest(tmp_path / "s")["generations"]] == [5, 10, 15, 20]


def test_another_schedule_is_refused_on_resume() -> None:
    def fingerprint(fraction: Any) -> Mapping[str, Any]:
        return SelfConsumingLoop(fraction, 4).fingerprint()

    before = fingerprint({"name": "linear", "start": 0.1, "end": 1.0})
    assert before["synthetic_fraction"] == {"name": "linear", "start": 0.1, "end": 1.0}
    with pytest.raises(ValueError, match=r"synthetic_fraction\.end: checkpoint 1\.0 vs now 0\.5"):
        check_resume(LoopState("run", dict(before), None, 1), fingerprint({"name": "linear", "start": 0.1, "end": 0.5}))


def test_the_growing_share_recipe_runs_replace_and_accumulate(tmp_path: Path) -> None:
    counts = {}
    for mode in ("accumulate", "replace"):
        run_dir = tmp_path / mode
        assert (
            main(
                [
                    "fit",
                    "--config",
                    str(RECIPES / "gaussian_growing_share.yaml"),
                    "--run_dir",
                    str(run_dir),
                    "--loop.mode",
                    mode,
                    "--loop.generations",
                    "10",
                    "--trainer.enable_checkpointing",
                    "false",
                ]
            )
            == 0
        )
        counts[mode] = [g["count"] for g in manifest(run_dir / "synthetic")["generations"]]
    assert counts["accumulate"] == counts["replace"] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert torch.tensor(counts["replace"]).diff().gt(0).all()
