"""One continuous fit: optimizer and scheduler state carry over, correction, logging."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import GaussianModel, fit, gaussian_points, loader, manifest
from lightning.pytorch.loggers import CSVLogger

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.correctors import IdentityCorrector


def test_optimizer_and_scheduler_state_carry_over(tmp_path: Path) -> None:
    model = GaussianModel(scheduler=True)
    loop = SelfConsumingLoop(0.5, 3, images_per_generation=60, output_dir=tmp_path / "s")
    t = fit(tmp_path, model, loader(gaussian_points(50)), loop)
    steps = 4 * 6
    assert int(t.optimizers[0].state[model.mean]["step"]) == steps
    assert t.lr_scheduler_configs[0].scheduler.last_epoch == steps


def test_identity_corrector_equals_no_corrector(tmp_path: Path) -> None:
    weights = []
    for corrector in (None, IdentityCorrector(), "identity"):
        torch.manual_seed(0)
        model = GaussianModel(noise=0.1)
        loop = SelfConsumingLoop(
            0.8, 3, images_per_generation=40, corrector=corrector, output_dir=tmp_path / str(corrector)
        )
        fit(tmp_path, model, loader(gaussian_points(30)), loop)
        weights.append(torch.cat([model.mean.detach(), model.log_std.detach()]))
    assert torch.equal(weights[0], weights[1]) and torch.equal(weights[0], weights[2])


def test_correction_changes_the_data(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(
        0.5,
        1,
        images_per_generation=20,
        corrector="optimal_transport",
        corrector_kwargs={"strength": float("inf")},
        output_dir=tmp_path / "s",
    )
    real = gaussian_points(50)
    fit(tmp_path, GaussianModel(), loader(real), loop)
    record = manifest(tmp_path / "s")["generations"][0]
    assert record["corrector"] == "optimal_transport" and record["strength"] == float("inf")
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "s" / "gen_0001" / record["shards"][0][0]))
    # gamma = inf: every corrected point is a real point, each at most once.
    rows = {tuple(r) for r in real.tolist()}
    assert all(tuple(r) in rows for r in stored["data"].tolist())
    assert len({tuple(r) for r in stored["data"].tolist()}) == 25


def test_long_steps_report_their_duration(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20, corrector="optimal_transport", output_dir=tmp_path / "s")
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):  # other tests may quiet it
        fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    text = caplog.text
    for pattern in (
        r"sampled 25 points for generation 1 in \d+\.\d s",
        r"corrected generation 1 in \d+\.\d s",
        r"generation 1 trained on 20 samples from 50 real \+ 25 synthetic items in \d+\.\d s",
    ):
        assert re.search(pattern, text), pattern


def test_module_correct_method_is_used(tmp_path: Path) -> None:
    class Snapping(GaussianModel):
        def correct(self, batch: Any, *, generation: int, generator: Any, reference: Any) -> torch.Tensor:
            return torch.full_like(batch.data, float(generation))

    model = Snapping(record=True)
    loop = SelfConsumingLoop(0.5, 2, images_per_generation=None, output_dir=tmp_path / "s")
    fit(tmp_path, model, loader(gaussian_points(50)), loop)
    gen2 = torch.cat(model.seen[-8:])
    assert int((gen2 == 2.0).all(1).sum()) == 25  # one pass over 75 items: all 25 synthetic ones
    assert manifest(tmp_path / "s")["generations"][0]["corrector"] == "module:Snapping.correct"


def test_per_generation_metrics_reach_the_logger(tmp_path: Path) -> None:
    logger = CSVLogger(str(tmp_path), name="logs", version=0)
    loop = SelfConsumingLoop(0.5, 2, images_per_generation=20, corrector="random_pairing", output_dir=tmp_path / "s")
    fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop, logger=logger, log_every_n_steps=1)
    import csv

    rows = [r for r in csv.DictReader(open(tmp_path / "logs" / "version_0" / "metrics.csv")) if r.get("generation")]
    assert [float(r["generation"]) for r in rows] == [0.0, 1.0, 2.0]
    assert [float(r["num_synthetic"]) for r in rows] == [0.0, 25.0, 25.0]
    assert [float(r["num_real"]) for r in rows] == [50.0] * 3
    assert all(float(r["time_training_s"]) > 0 for r in rows)
    assert float(rows[1]["time_sampling_s"]) > 0 and float(rows[1]["time_correcting_s"]) > 0
