"""The synthetic-data detector (a classifier two-sample test) and the live stability monitor."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import fit, metrics_rows
from torch import Tensor

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.callbacks import DetectorMetrics, GenerationCSV, StabilityMonitor
from sclc_lightning.datasets.toy import GaussianDataModule
from sclc_lightning.metrics import c2st_auc
from sclc_lightning.models import GaussianModel
from sclc_lightning.theory import bertrand_is_stable, bertrand_max_fraction


def test_the_detector_cannot_tell_fresh_real_draws_and_tells_a_collapse() -> None:
    # 1,000 items per class: the AUC of a classifier without signal has a standard error of about
    # 0.013 (Hanley & McNeil), so 0.5 ± 0.05 is almost 4 of them.
    g = torch.Generator().manual_seed(1)
    real, fresh = torch.randn(1000, 2, generator=g), torch.randn(1000, 2, generator=g)
    assert abs(c2st_auc(fresh, real) - 0.5) < 0.05
    assert c2st_auc(0.2 * fresh, real) > 0.9  # a collapsed spread, same mean: the MLP sees it
    assert abs(c2st_auc(0.2 * fresh, real, classifier="logistic") - 0.5) < 0.1  # a linear one does not
    with pytest.raises(ValueError, match="classifier"):
        c2st_auc(fresh, real, classifier="tree")


class Shrunk(GaussianModel):
    """Samples at half its fitted spread without saying so (a hidden sampling bias)."""

    def sample(
        self, num_samples: int, *, generator: Any = None, conditions: Any = None, temperature: float = 1.0
    ) -> Tensor:
        return super().sample(num_samples, generator=generator, temperature=0.5 * temperature)


def _run(tmp_path: Path, model: GaussianModel, callbacks: list[Any], generations: int = 8, **loop: Any) -> list[Any]:
    settings: dict[str, Any] = {"mode": "replace", **loop}
    loop_ = SelfConsumingLoop(1.0, generations, images_per_generation=None, output_dir=tmp_path / "s", **settings)
    data = GaussianDataModule(n=600, dim=2, n_test=1000, batch_size=600, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = fit(tmp_path, model, data, loop_, callbacks=[*callbacks, GenerationCSV()])
    return [trainer, [str(w.message) for w in caught if "StabilityMonitor" in str(w.message)]]


def test_the_monitor_follows_the_exact_gaussian_and_says_when_it_leaves_the_band(tmp_path: Path) -> None:
    trainer, said = _run(
        tmp_path / "ok", GaussianModel(dim=2), [StabilityMonitor()], sample_kwargs={"temperature": 0.9}
    )
    rows = metrics_rows(tmp_path / "ok")
    assert said == [] and all(abs(r["log_sigma_z"]) < 3 for r in rows)
    assert rows[-1]["log_sigma_expected"] == pytest.approx(8 * (-0.1053605 - 0.0008361), abs=1e-3)
    assert "log_sigma_z" in trainer.progress_bar_metrics  # the progress bar's postfix shows it
    _, said = _run(tmp_path / "biased", Shrunk(dim=2), [StabilityMonitor()])
    assert len(said) == 1 and "standard deviations from the exact Gaussian's expectation" in said[0]


def test_the_monitor_checks_bertrands_condition_and_a_drift_metric(tmp_path: Path) -> None:
    assert bertrand_max_fraction(alpha=1.0, epsilon=1.0, lipschitz=1.0) == 0.5
    assert bertrand_is_stable(0.49, 1.0, 1.0, 1.0) and not bertrand_is_stable(0.5, 1.0, 1.0, 1.0)
    monitor = StabilityMonitor(alpha=1.0, epsilon=1.0, lipschitz=1.0, drift_threshold=0.75)
    detector = DetectorMetrics(num_samples=500, every=4, classifier="mlp")
    _, said = _run(
        tmp_path, GaussianModel(dim=2), [detector, monitor], generations=8, sample_kwargs={"temperature": 0.5}
    )
    rows = metrics_rows(tmp_path)
    assert all(r["bertrand_margin"] == -0.5 for r in rows[1:])  # λ = 1 against 1/(1 + 1) = 0.5
    # evaluated at generations 0, 4 and 8 on the loop's sampler, at τ = 0.5: already told apart
    # at generation 0 (half the spread), and σ halves every generation after
    aucs = [rows[g]["c2st_auc"] for g in (0, 4, 8)]
    assert 0.7 < aucs[0] < aucs[1] <= aucs[2] and aucs[2] > 0.99, aucs
    assert len(said) == 2  # each said once, though true at every generation
    assert any("Bertrand" in s for s in said) and any("c2st_auc" in s for s in said)
    with pytest.raises(ValueError, match="all of `alpha`, `epsilon` and `lipschitz`"):
        StabilityMonitor(alpha=1.0)
