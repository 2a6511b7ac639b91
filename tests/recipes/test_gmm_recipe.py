"""A Gaussian mixture refitted by EM on its own samples (Shumailov et al. 2024): the model's
density and sampling, and the recipe through ``sclc fit``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import metrics_rows
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from sclc_lightning.cli import main
from sclc_lightning.datasets.toy import GaussianMixtureDataModule
from sclc_lightning.models import GaussianMixtureModel
from sclc_lightning.models.gaussian_mixture import mixture_log_prob

RECIPES = Path(__file__).parents[2] / "recipes"


def test_density_and_samples_agree_with_scikit_learn_and_scipy() -> None:
    data = GaussianMixtureDataModule(means=[[-2.0, 0.0], [2.0, 1.0]], stds=[0.5, 1.0], weights=[0.3, 0.7], n=3000)
    data.setup("fit")
    assert data.train_points is not None and data.test_points is not None
    points = data.test_points[:50].double()
    expected = np.log(
        0.3 * multivariate_normal([-2, 0], 0.25 * np.eye(2)).pdf(points.numpy())
        + 0.7 * multivariate_normal([2, 1], np.eye(2)).pdf(points.numpy())
    )
    assert np.allclose(data.log_prob(points).numpy(), expected)

    fitted = GaussianMixture(2, random_state=0).fit(data.train_points.numpy())
    model = GaussianMixtureModel(num_components=2, dim=2)
    model.weights.copy_(torch.from_numpy(fitted.weights_))
    model.means.copy_(torch.from_numpy(fitted.means_))
    model.covariances.copy_(torch.from_numpy(fitted.covariances_))
    ours = mixture_log_prob(points, model.weights, model.means, model.covariances)
    assert np.allclose(ours.numpy(), fitted.score_samples(points.numpy()))

    samples = model.sample(20_000, generator=torch.Generator().manual_seed(0)).double()
    assert samples.shape == (20_000, 2) and samples.dtype == torch.float64
    assert torch.allclose(
        samples.mean(0), model.mixture_covariance().new_tensor(fitted.means_.T @ fitted.weights_), atol=0.05
    )
    assert torch.allclose(samples.T.cov(), model.mixture_covariance(), atol=0.1)
    with pytest.raises(ValueError, match="summing to 1"):
        GaussianMixtureDataModule(weights=[0.5, 0.6])


def _fit(run_dir: Path, *overrides: str) -> list[dict[str, float]]:
    args = ["fit", "--config", str(RECIPES / "gmm_em.yaml"), "--config", str(RECIPES / "small" / "gmm_em.yaml")]
    assert main([*args, "--run_dir", str(run_dir), *overrides]) == 0
    return metrics_rows(run_dir)


def test_refitting_on_its_own_samples_drifts_from_the_data_and_the_baseline_does_not(tmp_path: Path) -> None:
    drift = []
    for seed in (0, 1):
        rows = _fit(
            tmp_path / f"s{seed}", "--loop.generations", "60", "--seed_everything", str(seed), "--loop.seed", str(seed)
        )
        assert [int(r["generation"]) for r in rows] == list(range(61))
        assert rows[0]["kl_to_data"] < 0.05  # generation 0 fits the real data well
        assert abs(rows[0]["component_variance"] - 0.5) < 0.1  # two components of variance 0.25 per dimension
        assert all(abs(r["weight_0"] + r["weight_1"] - 1) < 1e-6 for r in rows)
        drift.append(rows[60]["kl_to_data"])
    assert sum(drift) / 2 > 0.05 + 2 * rows[0]["kl_to_data"]
    samples = sorted(p.name for p in (tmp_path / "s0" / "samples").glob("*.png"))
    assert samples == ["generation_0000.png", "generation_0050.png"]  # the paper's generations up to 60

    baseline = _fit(
        tmp_path / "base", "--loop.generations", "10", "--loop.synthetic_fraction", "0", "--loop.mode", "augment"
    )
    assert max(r["kl_to_data"] for r in baseline) < 0.05


@pytest.mark.slow
def test_several_processes_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    """ddp_spawn over two CPU processes: closed-form fits run in one process, and say so."""
    import os

    import lightning.pytorch as pl
    from lightning.fabric.plugins.environments.lightning import find_free_network_port

    from sclc_lightning import SelfConsumingLoop

    os.environ["MASTER_PORT"] = str(find_free_network_port())
    trainer = pl.Trainer(
        default_root_dir=str(tmp_path), accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=-1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[SelfConsumingLoop(1.0, 1, mode="replace", output_dir=tmp_path / "s")],
    )  # fmt: skip
    with pytest.raises(Exception, match="GaussianMixtureModel is fitted in closed form in one process"):
        trainer.fit(GaussianMixtureModel(), datamodule=GaussianMixtureDataModule(n=200, n_test=200, batch_size=50))
