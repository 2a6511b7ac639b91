r"""EDM (Karras et al. 2022) on diffusers' ``UNet2DModel``, with the preconditioning and the
Euler sampler of diffusers' ``EDMEulerScheduler`` (Bertrand et al. §5 use EDM on CIFAR-10 and
FFHQ-64).

Training draws :math:`\ln\sigma \sim N(P_{mean}, P_{std}^2)` and minimises
:math:`\lambda(\sigma)\,\|D_\theta(x + \sigma n; \sigma) - x\|^2` with
:math:`\lambda(\sigma) = (\sigma^2 + \sigma_d^2)/(\sigma\sigma_d)^2`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from sclc_lightning._checks import COUNT, POSITIVE, Range, check_arguments, check_ema_decay, plain_numbers
from sclc_lightning.mixing.weighting import split_weights, weighted_mean
from sclc_lightning.models._image_base import ImageDiffusion
from sclc_lightning.models._sampling import check_temperature
from sclc_lightning.models._unet import check_blocks, diffusers_module

__all__ = ["ImageEDM"]


@plain_numbers
class ImageEDM(ImageDiffusion):
    """EDM-preconditioned diffusion for images in [-1, 1].

    ``image_size``, ``channels``, ``block_out_channels``, ``layers_per_block``, ``attention``,
    ``num_classes``, ``lr``, ``ema_decay`` and ``pretrained_unet`` are as for
    :class:`~sclc_lightning.models.ImageDDPM` (a pretrained UNet must have been trained with EDM's
    preconditioning);
    ``sigma_min``, ``sigma_max``, ``sigma_data`` and ``rho`` are the EDM noise schedule;
    ``p_mean`` and ``p_std`` the log-normal distribution of training noise levels;
    ``sampling_steps`` the Euler steps when sampling.
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 3,
        block_out_channels: Sequence[int] = (64, 128, 128),
        layers_per_block: int = 2,
        attention: bool = True,
        num_classes: int | None = None,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        sigma_data: float = 0.5,
        rho: float = 7.0,
        p_mean: float = -1.2,
        p_std: float = 1.2,
        sampling_steps: int = 18,
        lr: float = 2e-4,
        ema_decay: float | None = None,
        pretrained_unet: str | None = None,
    ) -> None:
        check_arguments(
            ImageEDM.__init__,
            locals(),
            **dict.fromkeys(("image_size", "channels", "layers_per_block", "num_classes", "sampling_steps"), COUNT),
            **dict.fromkeys(("sigma_min", "sigma_max", "sigma_data", "rho", "p_std", "lr"), POSITIVE),
            ema_decay=Range(minimum=0, maximum=1),
        )
        check_ema_decay(ema_decay)
        if pretrained_unet is None:
            check_blocks(block_out_channels)
        if sigma_min >= sigma_max:
            raise ValueError(f"`sigma_min` must be below `sigma_max`, got {sigma_min} and {sigma_max}.")
        super().__init__()  # saves the arguments above as hyperparameters, builds the UNet
        self.scheduler = diffusers_module().EDMEulerScheduler(
            sigma_min=sigma_min, sigma_max=sigma_max, sigma_data=sigma_data, rho=rho
        )
        self.sigma_data, self.p_mean, self.p_std, self.sampling_steps = sigma_data, p_mean, p_std, sampling_steps

    def denoise(self, net: torch.nn.Module, noisy: Tensor, sigma: Tensor, labels: Tensor | None) -> Tensor:
        """:math:`D_\\theta(x; \\sigma)` with EDM's input, noise and output preconditioning."""
        sigma_b = sigma.view(-1, 1, 1, 1)
        inputs = self.scheduler.precondition_inputs(noisy, sigma_b)
        output = net(inputs, self.scheduler.precondition_noise(sigma), class_labels=labels).sample
        denoised: Tensor = self.scheduler.precondition_outputs(noisy, output, sigma_b)
        return denoised

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        batch, weights = split_weights(batch)
        images, labels = self.split(batch)
        sigma = (torch.randn(images.shape[0], device=images.device) * self.p_std + self.p_mean).exp()
        noisy = images + sigma.view(-1, 1, 1, 1) * torch.randn_like(images)
        weight = (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
        error = (self.denoise(self.unet, noisy, sigma, labels) - images).pow(2).flatten(1).mean(1)
        loss = weighted_mean(weight * error, weights)
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
        r"""``num_samples`` images ``(num_samples, C, H, W)`` by the Euler sampler, clamped to [-1, 1];
        ``temperature`` :math:`\tau` scales the initial noise (:math:`\tau\sigma_{max} z`)."""
        tau = check_temperature(temperature, type(self).__name__)
        net, labels = self.sampling_net(), self.sampling_labels(conditions)
        self.scheduler.set_timesteps(self.sampling_steps, device=self.device)
        x = self.initial_noise(num_samples, generator) * self.scheduler.init_noise_sigma * tau
        for t in self.scheduler.timesteps:
            inputs = self.scheduler.scale_model_input(x, t)
            output = net(inputs, t, class_labels=labels).sample
            x = self.scheduler.step(output, t, x, generator=generator).prev_sample
        return x.clamp(-1.0, 1.0)
