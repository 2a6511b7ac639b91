"""PointMetrics samples the model as the loop does: its sampler, and the held-out labels of a
conditional model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from helpers import ConditionalGaussian, GaussianModel, trainer
from torch.utils.data import DataLoader, TensorDataset

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.callbacks import PointMetrics


class Labelled(pl.LightningDataModule):
    """Two classes 10 apart; the test split has its own labels (or none)."""

    def __init__(self, test_labels: bool = True) -> None:
        super().__init__()
        self.test_labels = test_labels

    def _split(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % 2
        return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)) + 10.0 * labels[:, None], labels

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(TensorDataset(*self._split(40, 0)), batch_size=10, shuffle=True)

    def test_dataloader(self) -> DataLoader[Any]:
        x, y = self._split(30, 1)
        return DataLoader(TensorDataset(x, y) if self.test_labels else TensorDataset(x), batch_size=10)


class Recording(ConditionalGaussian):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[torch.Tensor] = []

    def sample(self, num_samples: int, *, generator: Any = None, conditions: Any = None) -> torch.Tensor:
        self.asked.append(conditions.clone())
        return super().sample(num_samples, generator=generator, conditions=conditions)


def test_a_conditional_model_is_evaluated_on_the_held_out_labels(tmp_path: Path) -> None:
    model = Recording()
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20, condition_field=1, output_dir=tmp_path / "s")
    trainer(tmp_path, [loop, PointMetrics(num_samples=60, batch_size=60)]).fit(model, datamodule=Labelled())
    held_out = Labelled()._split(30, 1)[1]
    evaluations = [asked for asked in model.asked if len(asked) == 60]
    assert len(evaluations) == 2 and all(torch.equal(a, held_out.repeat(2)) for a in evaluations)
    # the samples are drawn for the labels, so they match the two-class held-out data
    assert float(model.trainer.callback_metrics["frechet"]) < 1.0


def test_a_conditional_loop_needs_held_out_labels(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20, condition_field=1, output_dir=tmp_path / "s")
    with pytest.raises(ValueError, match="PointMetrics: the loop samples the model with conditions, but the held-out"):
        trainer(tmp_path, [loop, PointMetrics(num_samples=20)]).fit(Recording(), datamodule=Labelled(test_labels=False))


def test_the_loops_sampler_is_used(tmp_path: Path) -> None:
    class Named(GaussianModel):
        sample = None  # type: ignore[assignment]

        def __init__(self) -> None:
            super().__init__()
            self.calls: list[int] = []

        def generate(self, num_samples: int, *, generator: Any = None) -> torch.Tensor:
            self.calls.append(num_samples)
            return GaussianModel.sample(self, num_samples, generator=generator)

    class Unlabelled(Labelled):
        def train_dataloader(self) -> DataLoader[Any]:
            return DataLoader(self._split(40, 0)[0], batch_size=10, shuffle=True)

    model = Named()
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20, sampler="generate", output_dir=tmp_path / "s")
    trainer(tmp_path, [loop, PointMetrics(num_samples=30)]).fit(model, datamodule=Unlabelled(test_labels=False))
    assert model.calls == [2, 30, 20, 30]  # the dry run, generation 0's evaluation, sampling, generation 1's
    assert torch.isfinite(torch.tensor(float(model.trainer.callback_metrics["frechet"])))
