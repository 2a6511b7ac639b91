"""Your own exactly fitted model: ExactFitModule is public, and a model that never steps an
optimizer still gets one checkpoint per generation (the loop counts a step for it)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from helpers import fit, gaussian_points, loader
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.models import ExactFitModule


class MeanModel(ExactFitModule):
    """The mean of the generation's points, sampled with unit noise."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = torch.nn.Parameter(torch.zeros(2), requires_grad=False)

    def batch_statistics(self, batch: Any) -> list[Tensor]:
        x = self.first_tensor(batch)
        return [x.new_tensor(float(len(x))), x.sum(0)]

    def fit(self, statistics: list[Tensor]) -> dict[str, float]:
        count, total = statistics
        self.mean.copy_(total / count)
        return {"mean_norm": float(self.mean.norm())}

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
        return (self.mean + torch.randn(num_samples, 2, generator=generator)).detach()


class NeverSteps(pl.LightningModule):
    """A user's own closed-form model, written without ExactFitModule: manual optimization, the
    mean set in ``training_step``, no optimizer ever stepped."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.mean = torch.nn.Parameter(torch.zeros(2), requires_grad=False)

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        self.mean.copy_(batch.mean(0))

    def configure_optimizers(self) -> Any:
        return None

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
        return (self.mean + torch.randn(num_samples, 2, generator=generator)).detach()


@pytest.mark.parametrize("model_class", [MeanModel, NeverSteps])
def test_every_generation_of_an_exactly_fitted_model_is_checkpointed(
    tmp_path: Path, model_class: type, caplog: pytest.LogCaptureFixture
) -> None:
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", every_n_epochs=1, save_top_k=-1, filename="{epoch}")
    loop = SelfConsumingLoop(1.0, 3, images_per_generation=None, mode="replace", output_dir=tmp_path / "s", seed=0)
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        trainer = fit(
            tmp_path,
            model_class(),
            loader(gaussian_points(40), batch_size=40),
            loop,
            callbacks=[ckpt],
            enable_checkpointing=True,
        )
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [f"epoch={e}.ckpt" for e in range(4)]
    assert trainer.global_step == 4  # one step per generation
    said = "stepped no optimizer in generation 0, so the loop counts one step per such generation"
    assert (said in caplog.text) == (model_class is NeverSteps)
