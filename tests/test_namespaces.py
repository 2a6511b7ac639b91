"""Both Lightning namespaces: the callback in a ``pytorch_lightning`` Trainer, and ``sclc fit``
with a user's module from the working directory written for either package."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.cli import main
from sclc_lightning.lightning_cli import model_namespace

MODULE = """
import torch
import {package} as L
from torch.utils.data import DataLoader


class Points(L.LightningDataModule):
    def __init__(self, n: int = 30):
        super().__init__()
        self.n = n

    def train_dataloader(self):
        points = torch.randn(self.n, 2, generator=torch.Generator().manual_seed(0))
        return DataLoader(points, batch_size=10, shuffle=True)


class Gaussian(L.LightningModule):
    def __init__(self, lr: float = 0.1):
        super().__init__()
        self.lr = lr
        self.mean = torch.nn.Parameter(torch.zeros(2))

    def training_step(self, batch, batch_idx):
        return ((batch - self.mean) ** 2).sum(1).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def sample(self, num_samples, *, generator=None):
        return (self.mean + torch.randn(num_samples, 2, generator=generator)).detach()
"""


def test_the_callback_runs_in_a_pytorch_lightning_trainer(tmp_path: Path) -> None:
    import pytorch_lightning as PL
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    namespace: dict[str, Any] = {}
    exec(MODULE.format(package="pytorch_lightning"), namespace)

    def fit(folder: str, generations: int, ckpt_path: str | None = None) -> Any:
        torch.manual_seed(0)
        model = namespace["Gaussian"]()
        loop = SelfConsumingLoop(0.5, generations, images_per_generation=20, output_dir=tmp_path / folder / "s")
        saver = ModelCheckpoint(dirpath=tmp_path / folder / "ck", save_top_k=-1, filename="{epoch}")
        trainer = PL.Trainer(
            default_root_dir=str(tmp_path / folder),
            callbacks=[loop, saver, EarlyStopping(monitor="nothing", check_on_train_epoch_end=False)],
            max_epochs=-1,
            logger=False,
            enable_progress_bar=False,
        )
        with pytest.warns(UserWarning, match=r"EarlyStopping\(monitor='nothing'\) stops the whole self-consuming run"):
            trainer.fit(model, datamodule=namespace["Points"](), ckpt_path=ckpt_path)
        return model, loop

    model, loop = fit("full", 3)
    assert [(r.generation, r.num_real, r.num_synthetic) for r in loop.history] == [
        (0, 30, 0),
        (1, 30, 15),
        (2, 30, 15),
        (3, 30, 15),
    ]
    fit("short", 1)
    resumed, _ = fit("short", 3, ckpt_path=str(tmp_path / "short" / "ck" / "epoch=1.ckpt"))
    assert torch.equal(resumed.mean, model.mean)  # extended bit for bit, as the uninterrupted run


@pytest.mark.parametrize("package", ["lightning.pytorch", "pytorch_lightning"])
def test_sclc_fit_finds_a_module_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: str
) -> None:
    name = f"user_model_{package.replace('.', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE.format(package=package))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    args = ["fit", "--model", f"{name}.Gaussian", "--data", f"{name}.Points"]
    assert model_namespace(args) == "lightning.pytorch"  # not importable yet: the default
    loop_args = ["--loop.synthetic_fraction", "0.5", "--loop.generations", "2", "--loop.images_per_generation", "20"]
    assert main([*args, *loop_args, "--run_dir", "run", "--wandb", "false"]) == 0
    assert model_namespace(args) == package
    with open(tmp_path / "run" / "metrics.csv") as handle:
        assert [int(float(r["num_synthetic"])) for r in csv.DictReader(handle)] == [0, 15, 15]
    manifest = json.loads((tmp_path / "run" / "synthetic" / "manifest.json").read_text())
    assert [g["count"] for g in manifest["generations"]] == [15, 15]
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert f"class_path: {name}.Gaussian" in config and f"{package}.loggers.CSVLogger" in config
