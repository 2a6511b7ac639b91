import csv
from pathlib import Path

import torch

from sclc_lightning.demo import main
from sclc_lightning.models import GaussianModel, gaussian_w2


def test_gaussian_model_fits_exactly() -> None:
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    points = torch.randn(64, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 2.0, 3.0])
    model = GaussianModel(3)
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, DataLoader(points, batch_size=10))
    assert torch.allclose(model.mean, points.mean(0), atol=1e-6)
    assert torch.allclose(model.cov, torch.cov(points.T), atol=1e-5)  # unbiased covariance
    assert gaussian_w2(model.mean, model.cov, model.mean, model.cov) < 1e-3


def test_demo_shows_collapse_and_its_correction(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--generations", "30", "--seeds", "4"]) == 0
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    rows = list(csv.DictReader(open(tmp_path / "summary.csv")))
    final = {}
    for arm in {r["arm"] for r in rows}:
        last = [float(r["sigma"]) for r in rows if r["arm"] == arm and r["generation"] == "30"]
        assert len(last) == 4
        final[arm.split(" ")[0]] = sum(last) / 4
    # theory: E[sigma_30] = 0.9727^30 ~ 0.44 without correction
    assert final["self-consuming"] < 0.6 < final["self-correcting"] and final["real"] > 0.6
