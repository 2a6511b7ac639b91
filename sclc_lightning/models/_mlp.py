"""What the 2-D point models share: a time-conditioned MLP (their denoiser / velocity field),
reading points from a batch, logging the loss and the optimizer."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

__all__ = ["PointGenerator", "TimeMLP"]


class PointGenerator(pl.LightningModule):
    """Base of :class:`~sclc_lightning.models.PointDDPM` and
    :class:`~sclc_lightning.models.PointFlowMatching`: items are points or ``(point, ...)``, the
    optimizer is Adam at ``self.lr``."""

    #: Reads each item's weight (:mod:`~sclc_lightning.mixing.weighting`): a weighted loss.
    reads_item_weights = True

    lr: float

    @staticmethod
    def points(batch: Any) -> Tensor:
        """The points of a batch of points or of tuples."""
        return batch if isinstance(batch, Tensor) else batch[0]

    def logged(self, loss: Tensor) -> Tensor:
        """``loss``, logged as ``train_loss`` (per epoch, i.e. per generation)."""
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class TimeMLP(nn.Module):
    """``f(x, t)`` with a sinusoidal embedding of ``t``.

    Args:
        dim: point dimension.
        hidden: width of the hidden layers.
        layers: number of hidden layers.
        embed: size of the time embedding.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, layers: int = 3, embed: int = 32):
        super().__init__()
        self.embed = embed
        blocks: list[nn.Module] = [nn.Linear(dim + embed, hidden), nn.SiLU()]
        for _ in range(layers - 1):
            blocks += [nn.Linear(hidden, hidden), nn.SiLU()]
        blocks.append(nn.Linear(hidden, dim))
        self.net = nn.Sequential(*blocks)

    def time_embedding(self, t: Tensor) -> Tensor:
        half = self.embed // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        angles = t.float()[:, None] * freqs[None] * 1000.0
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """``x``: (batch, dim); ``t``: (batch,) in [0, 1]."""
        return self.net(torch.cat([x, self.time_embedding(t).to(x.dtype)], dim=1))
