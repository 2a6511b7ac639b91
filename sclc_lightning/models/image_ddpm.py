"""Image DDPM on diffusers' ``UNet2DModel`` with its ``DDPMScheduler`` (Ho et al. 2020), optional
EMA and class conditioning. Sampling uses DDPM or the faster DDIM scheduler, with a configurable
number of steps."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["ImageDDPM"]


class ImageDDPM(pl.LightningModule):
    """Denoising diffusion for images in [-1, 1], items ``image`` or ``(image, label)``.

    Args:
        image_size: height and width.
        channels: image channels.
        block_out_channels: UNet widths per resolution level (multiples of 32).
        layers_per_block: ResNet layers per UNet block.
        attention: use attention blocks at the lowest resolution.
        num_classes: class-conditional with this many classes (labels passed as ``conditions``).
        timesteps: diffusion steps in training.
        sampler: ``"ddpm"`` or ``"ddim"`` (deterministic, few steps).
        sampling_steps: reverse steps when sampling.
        lr: AdamW learning rate.
        ema_decay: keep an exponential moving average of the weights and sample with it.
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        block_out_channels: Sequence[int] = (32, 64, 64),
        layers_per_block: int = 1,
        attention: bool = False,
        num_classes: int | None = None,
        timesteps: int = 1000,
        sampler: str = "ddim",
        sampling_steps: int = 50,
        lr: float = 2e-4,
        ema_decay: float | None = None,
    ) -> None:
        super().__init__()
        # diffusers builds its classes lazily, which mypy cannot follow: use the module untyped
        diffusers: Any = importlib.import_module("diffusers")

        if sampler not in ("ddpm", "ddim"):
            raise ValueError(f"`sampler` must be 'ddpm' or 'ddim', got {sampler!r}.")
        self.save_hyperparameters()
        levels = len(block_out_channels)
        down = ["DownBlock2D"] * levels
        up = ["UpBlock2D"] * levels
        if attention:
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        self.unet: torch.nn.Module = diffusers.UNet2DModel(
            sample_size=image_size,
            in_channels=channels,
            out_channels=channels,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            num_class_embeds=num_classes,
        )
        self.ema = (
            AveragedModel(self.unet, multi_avg_fn=get_ema_multi_avg_fn(ema_decay)) if ema_decay is not None else None
        )
        self.noise_scheduler = diffusers.DDPMScheduler(num_train_timesteps=timesteps)
        sampler_class = diffusers.DDIMScheduler if sampler == "ddim" else diffusers.DDPMScheduler
        self.sampler = sampler_class.from_config(self.noise_scheduler.config)
        self.timesteps, self.sampling_steps, self.lr = timesteps, sampling_steps, lr

    def _split(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        if isinstance(batch, Tensor):
            return batch, None
        images, labels = batch[0], batch[1]
        return images, labels if self.hparams["num_classes"] else None

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        images, labels = self._split(batch)
        noise = torch.randn_like(images)
        t = torch.randint(self.timesteps, (images.shape[0],), device=images.device)
        noisy = self.noise_scheduler.add_noise(images, noise, t)
        prediction = self.unet(noisy, t, class_labels=labels).sample
        loss = (prediction - noise).pow(2).mean()
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.unet)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.unet.parameters(), lr=self.lr)

    @torch.no_grad()
    def sample(self, num_samples: int, *, generator: torch.Generator | None = None, conditions: Any = None) -> Tensor:
        """``num_samples`` images ``(num_samples, C, H, W)`` (clamped to [-1, 1])."""
        net = self.ema.module if self.ema is not None else self.unet
        size, channels = self.hparams["image_size"], self.hparams["channels"]
        labels = None
        if self.hparams["num_classes"]:
            if conditions is None:
                raise ValueError("A class-conditional ImageDDPM needs `conditions` (labels) to sample.")
            labels = torch.as_tensor(conditions, device=self.device)
        x = torch.randn(
            num_samples,
            channels,
            size,
            size,
            generator=generator,
            device=generator.device if generator is not None else None,
        ).to(self.device)
        self.sampler.set_timesteps(self.sampling_steps)
        for t in self.sampler.timesteps:
            eps = net(x, t.to(self.device), class_labels=labels).sample
            x = self.sampler.step(eps, t, x, generator=generator).prev_sample
        return x.clamp(-1.0, 1.0)
