"""Motion metrics separate good motions from broken ones."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from helpers import trainer
from torch import Tensor

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.callbacks import MotionMetrics
from sclc_lightning.callbacks.generation_csv import GenerationCSV
from sclc_lightning.datasets.motion import MotionDataModule


class MotionReplay(pl.LightningModule):
    """'Generates' training motions of the requested labels, optionally broken."""

    def __init__(self, bank: Tensor, bank_labels: Tensor, broken: bool):
        super().__init__()
        self.bank, self.bank_labels, self.broken = bank, bank_labels, broken
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return (self.weight**2).sum()

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def sample(self, num_samples: int, *, generator: Any = None, conditions: Any = None) -> Tensor:
        picks = [int(torch.nonzero(self.bank_labels == int(c))[i % 8]) for i, c in enumerate(conditions)]
        out = self.bank[torch.tensor(picks)].clone()
        if self.broken:  # sunk into the floor, with a shaking root and random joints
            out[:, :, 1] -= 0.2
            out[:, :, :3] += 0.1 * torch.randn(out[:, :, :3].shape, generator=generator)
            out[:, :, 3:] = torch.randn(out[:, :, 3:].shape, generator=generator)
        return out


def test_motion_metrics_separate_good_from_broken_motions(tmp_path: Path) -> None:
    data = MotionDataModule(n=96, n_test=48, frames=16, cache_dir=str(tmp_path / "cache"))
    data.setup("fit")
    assert data.train_set is not None
    rows = {}
    for broken in (False, True):
        folder = tmp_path / f"broken{broken}"
        metrics = MotionMetrics(num_samples=96, cache_dir=str(tmp_path / "cache"), classifier_epochs=40)
        loop = SelfConsumingLoop(0.0, 0, images_per_generation=32, output_dir=folder / "s", condition_field=1)
        run = trainer(folder, [loop, metrics, GenerationCSV()])
        run.fit(MotionReplay(data.train_set.images, data.train_set.labels, broken), datamodule=data)
        (rows[broken],) = list(csv.DictReader(open(folder / "metrics.csv")))
    good, bad = ({k: float(v) for k, v in rows[b].items() if v} for b in (False, True))
    assert good["matching_accuracy"] > 0.8 and bad["matching_accuracy"] < good["matching_accuracy"] - 0.3
    assert bad["fid"] > 5 * good["fid"]
    assert bad["penetration"] > 0.05 > 0.01 > good["penetration"]
    assert bad["joint_limit"] > 10 * max(good["joint_limit"], 1e-3) and bad["skating"] > 5 * good["skating"]
    assert good["real_penetration"] < 0.01 and good["real_floating"] < 0.02
    assert 0.5 < good["diversity_ratio"] < 2 and good["class_diversity"] > 0
