"""What the image diffusion models share: the UNet, EMA weights, labels and the optimizer."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from sclc_lightning.models._sampling import exponential_average, sampling_weights
from sclc_lightning.models._unet import build_unet, load_pretrained_unet

__all__ = ["ImageDiffusion"]


class ImageDiffusion(pl.LightningModule):
    """Base of :class:`ImageDDPM` and :class:`ImageEDM`; items are ``image`` or ``(image, label)``."""

    #: Reads each item's weight (:mod:`~sclc_lightning.mixing.weighting`): a weighted loss.
    reads_item_weights = True

    def __init__(self) -> None:
        """Save the subclass's constructor arguments as hyperparameters and build from them the
        UNet (``image_size``, ``channels``, ``block_out_channels``, ``layers_per_block``,
        ``attention``, ``num_classes``, or ``pretrained_unet``), the EMA copy (``ema_decay``) and
        the optimizer's ``lr``."""
        super().__init__()
        self.save_hyperparameters()  # the arguments of the subclass's __init__, which called this one
        hp = self.hparams
        self.image_size, self.channels, self.num_classes, self.lr = (
            hp["image_size"],
            hp["channels"],
            hp["num_classes"],
            hp["lr"],
        )
        if hp["pretrained_unet"] is not None:
            self.unet = load_pretrained_unet(hp["pretrained_unet"], self.image_size, self.channels, self.num_classes)
        else:
            blocks, layers, attention = hp["block_out_channels"], hp["layers_per_block"], hp["attention"]
            self.unet = build_unet(self.image_size, self.channels, blocks, layers, attention, self.num_classes)
        self.ema = exponential_average(self.unet, hp["ema_decay"])

    def split(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        """Images and (for class-conditional models) labels of a batch."""
        if isinstance(batch, Tensor):
            return batch, None
        return batch[0], batch[1] if self.num_classes else None

    def sampling_net(self) -> torch.nn.Module:
        """The EMA weights when kept (and updated at least once), else the trained ones."""
        return sampling_weights(self.ema, self.unet)

    def sampling_labels(self, conditions: Any) -> Tensor | None:
        if not self.num_classes:
            return None
        if conditions is None:
            raise ValueError(f"A class-conditional {type(self).__name__} needs `conditions` (labels) to sample.")
        return torch.as_tensor(conditions, device=self.device)

    def initial_noise(self, num_samples: int, generator: torch.Generator | None) -> Tensor:
        shape = (num_samples, self.channels, self.image_size, self.image_size)
        device = generator.device if generator is not None else None
        return torch.randn(shape, generator=generator, device=device).to(self.device)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.unet)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.unet.parameters(), lr=self.lr)
