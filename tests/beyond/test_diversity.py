"""DiversityMetrics: the dispersion ratio against generation 0 (kept across a resume), the tail
mass beyond the real data's 1st and 99th percentiles, and the mode weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import fit, metrics_rows

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.callbacks import DiversityMetrics, GenerationCSV
from sclc_lightning.datasets.toy import EightGaussiansDataModule, GaussianDataModule
from sclc_lightning.metrics import min_mode_weight, tail_mass
from sclc_lightning.models import GaussianModel


def test_the_real_distribution_has_ratio_one_and_two_percent_in_its_tails(tmp_path: Path) -> None:
    # λ = 0: the exact fit of 5,000 points of N(0, I) every generation. The tail share of 20,000
    # samples beyond the held-out percentiles (2,000 points) is 0.02 with a spread of about 0.003
    # (mostly from the percentiles of 2,000 points); ±0.008 is over 2.5 of it.
    loop = SelfConsumingLoop(0.0, 2, images_per_generation=None, output_dir=tmp_path / "s")
    metrics = DiversityMetrics(num_samples=20_000)
    data = GaussianDataModule(n=5000, dim=2, n_test=2000, batch_size=5000)
    fit(tmp_path, GaussianModel(dim=2), data, loop, callbacks=[metrics, GenerationCSV()])
    rows = metrics_rows(tmp_path)
    assert rows[0]["dispersion_ratio"] == 1.0
    assert all(abs(r["dispersion_ratio"] - 1) < 0.05 and abs(r["tail_mass"] - 0.02) < 0.008 for r in rows), rows
    assert metrics.state_dict()["first_dispersion"] == pytest.approx(rows[0]["dispersion"], rel=1e-6)
    fresh = DiversityMetrics()
    fresh.load_state_dict(metrics.state_dict())  # a resumed run divides by generation 0's
    assert fresh.first_dispersion == metrics.first_dispersion


def test_a_collapsed_cloud_has_no_tails_and_a_lost_mode_weighs_nothing() -> None:
    reference = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    assert float(tail_mass(0.1 * reference, reference)) == 0.0
    centres = EightGaussiansDataModule().centres
    only_two = centres[torch.arange(400) % 2]  # all samples on modes 0 and 1
    assert float(min_mode_weight(only_two, centres)) == 0.0
    assert float(min_mode_weight(centres.repeat(5, 1), centres)) == 0.125
