"""A small DDPM for point clouds: an MLP denoiser with diffusers' ``DDPMScheduler``
(Bertrand et al. 2024, Fig. 1: eight Gaussians)."""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import Tensor

from sclc_lightning._checks import COUNT, POSITIVE, check_arguments, plain_numbers
from sclc_lightning.mixing.weighting import split_weights, weighted_mean
from sclc_lightning.models._mlp import PointGenerator, TimeMLP
from sclc_lightning.models._sampling import check_temperature

__all__ = ["PointDDPM"]


@plain_numbers
class PointDDPM(PointGenerator):
    """Denoising diffusion on points; ``sample`` runs the reverse process with a generator.

    Args:
        dim: point dimension.
        hidden: MLP width.
        layers: MLP hidden layers.
        timesteps: diffusion steps in training.
        sampling_steps: reverse steps when sampling (``<= timesteps``).
        lr: Adam learning rate.
    """

    def __init__(
        self,
        dim: int = 2,
        hidden: int = 128,
        layers: int = 3,
        timesteps: int = 100,
        sampling_steps: int = 100,
        lr: float = 1e-3,
    ) -> None:
        super().__init__()
        check_arguments(
            PointDDPM.__init__,
            locals(),
            **dict.fromkeys(("dim", "hidden", "layers", "timesteps", "sampling_steps"), COUNT),
            lr=POSITIVE,
        )
        # diffusers builds its classes lazily, which mypy cannot follow: use the module untyped
        diffusers: Any = importlib.import_module("diffusers")

        self.save_hyperparameters()
        self.denoiser = TimeMLP(dim, hidden, layers)
        self.scheduler = diffusers.DDPMScheduler(
            num_train_timesteps=timesteps, beta_schedule="squaredcos_cap_v2", clip_sample=False
        )
        self.timesteps, self.sampling_steps, self.lr = timesteps, sampling_steps, lr

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        batch, weights = split_weights(batch)
        x = self.points(batch)
        noise = torch.randn_like(x)
        t = torch.randint(self.timesteps, (x.shape[0],), device=x.device)
        noisy = self.scheduler.add_noise(x, noise, t)
        return self.logged(weighted_mean((self.denoiser(noisy, t / self.timesteps) - noise).pow(2), weights))

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        conditions: Any = None,
        temperature: float = 1.0,
        sampling_steps: int | None = None,
    ) -> Tensor:
        r"""``num_samples`` points, shape ``(num_samples, dim)``; ``temperature`` :math:`\tau`
        scales the initial noise (:math:`x_T \sim N(0, \tau^2 I)`), not the noise of each step;
        ``sampling_steps`` overrides the model's number of denoising steps (fewer: a biased sampler)."""
        tau = check_temperature(temperature, type(self).__name__)
        count = self.sampling_steps if sampling_steps is None else sampling_steps
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= self.timesteps:
            raise ValueError(
                f"PointDDPM.sample: `sampling_steps` must be an integer in [1, {self.timesteps}], got {count!r}."
            )
        self.scheduler.set_timesteps(count)
        x = tau * torch.randn(
            num_samples, self.hparams["dim"], generator=generator, device=generator.device if generator else None
        )
        x = x.to(self.device)
        for t in self.scheduler.timesteps:
            steps = torch.full((num_samples,), int(t), device=self.device)
            eps = self.denoiser(x, steps / self.timesteps)
            x = self.scheduler.step(eps, t, x, generator=generator).prev_sample
        return x
