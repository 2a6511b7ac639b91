"""Image DDPM on diffusers' ``UNet2DModel`` with its ``DDPMScheduler`` (Ho et al. 2020), optional
EMA and class conditioning. Sampling uses DDPM or the faster DDIM scheduler, with a configurable
number of steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from sclc_lightning._checks import COUNT, POSITIVE, Range, check_arguments, check_ema_decay, plain_numbers
from sclc_lightning.mixing.weighting import split_weights, weighted_mean
from sclc_lightning.models._image_base import ImageDiffusion
from sclc_lightning.models._sampling import check_temperature
from sclc_lightning.models._unet import check_blocks, diffusers_module

__all__ = ["ImageDDPM"]


@plain_numbers
class ImageDDPM(ImageDiffusion):
    """Denoising diffusion (noise prediction) for images in [-1, 1].

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
        pretrained_unet: a diffusers ``UNet2DModel`` folder (``save_pretrained`` output, or the
            ``unet/`` folder of a downloaded pipeline such as ``google/ddpm-cifar10-32``): its
            architecture and weights replace ``block_out_channels``, ``layers_per_block`` and
            ``attention`` (a pretrained generation 0; use ``initial_images=0`` to skip training
            it). Read from disk only; ``image_size``, ``channels`` and ``num_classes`` must match
            its config, and ``timesteps`` the schedule it was trained with.
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
        sampler: Literal["ddpm", "ddim"] = "ddim",
        sampling_steps: int = 50,
        lr: float = 2e-4,
        ema_decay: float | None = None,
        pretrained_unet: str | None = None,
    ) -> None:
        check_arguments(
            ImageDDPM.__init__,
            locals(),
            **dict.fromkeys(("image_size", "channels", "layers_per_block", "num_classes", "timesteps"), COUNT),
            sampling_steps=COUNT,
            lr=POSITIVE,
            ema_decay=Range(minimum=0, above=None, maximum=1),
        )
        check_ema_decay(ema_decay)
        if pretrained_unet is None:
            check_blocks(block_out_channels)
        super().__init__()  # saves the arguments above as hyperparameters, builds the UNet
        diffusers = diffusers_module()
        self.noise_scheduler = diffusers.DDPMScheduler(num_train_timesteps=timesteps)
        sampler_class = diffusers.DDIMScheduler if sampler == "ddim" else diffusers.DDPMScheduler
        self.sampler = sampler_class.from_config(self.noise_scheduler.config)
        self.timesteps, self.sampling_steps = timesteps, sampling_steps

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        batch, weights = split_weights(batch)
        images, labels = self.split(batch)
        noise = torch.randn_like(images)
        t = torch.randint(self.timesteps, (images.shape[0],), device=images.device)
        noisy = self.noise_scheduler.add_noise(images, noise, t)
        loss = weighted_mean((self.unet(noisy, t, class_labels=labels).sample - noise).pow(2), weights)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        conditions: Any = None,
        temperature: float = 1.0,
    ) -> Tensor:
        r"""``num_samples`` images ``(num_samples, C, H, W)``, clamped to [-1, 1]; ``temperature``
        :math:`\tau` scales the initial noise (:math:`x_T \sim N(0, \tau^2 I)`), not the noise of each step."""
        tau = check_temperature(temperature, type(self).__name__)
        net, labels = self.sampling_net(), self.sampling_labels(conditions)
        x = self.initial_noise(num_samples, generator) * tau
        self.sampler.set_timesteps(self.sampling_steps)
        for t in self.sampler.timesteps:
            eps = net(x, t.to(self.device), class_labels=labels).sample
            x = self.sampler.step(eps, t, x, generator=generator).prev_sample
        return x.clamp(-1.0, 1.0)
