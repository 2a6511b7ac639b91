"""A conditional diffusion model over fixed-length motions, after MDM (Tevet et al. 2023), the
model of Gillman et al. §6: a transformer encoder over frames that predicts the clean motion,
diffusers' ``DDPMScheduler``, and classifier-free guidance on the motion label."""

from __future__ import annotations

import importlib
import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from sclc_lightning._checks import (
    COUNT,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    check_arguments,
    check_ema_decay,
    plain_numbers,
)
from sclc_lightning.mixing.weighting import split_weights, weighted_mean
from sclc_lightning.models._sampling import check_temperature, exponential_average, sampling_weights

__all__ = ["MotionDiffusion"]


def _timestep_embedding(t: Tensor, dim: int) -> Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class MotionDenoiser(nn.Module):
    """Transformer encoder over ``frames`` tokens plus one condition token (timestep + label)."""

    def __init__(self, features: int, frames: int, num_classes: int, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.width = width
        self.inp = nn.Linear(features, width)
        self.position = nn.Parameter(torch.randn(frames + 1, width) * 0.02)
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.label = nn.Embedding(num_classes + 1, width)  # the last index is "no label" (guidance)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(width, features)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        condition = self.time(_timestep_embedding(t, self.width)) + self.label(labels)
        tokens = torch.cat([condition[:, None], self.inp(x)], dim=1) + self.position
        return self.out(self.encoder(tokens)[:, 1:])


@plain_numbers
class MotionDiffusion(pl.LightningModule):
    """Class-conditional diffusion over motions ``(frames, features)``; items ``(motion, label)``.

    The network predicts the clean motion (as MDM); labels are dropped with probability
    ``label_dropout`` in training so that sampling can use classifier-free guidance
    ``x̂ = x̂(∅) + s (x̂(c) − x̂(∅))`` with scale ``guidance`` (the paper uses 2.5; 1 turns it off).
    Motions are standardised with the per-feature mean and standard deviation of the first
    training set the model sees (kept in the checkpoint).

    Args:
        frames: frames per motion.
        features: values per frame (9 for the planar biped).
        num_classes: motion labels.
        width: transformer width.
        layers: transformer layers.
        heads: attention heads.
        timesteps: diffusion steps in training.
        sampling_steps: reverse steps when sampling.
        guidance: classifier-free guidance scale.
        label_dropout: probability of training without the label.
        lr: AdamW learning rate (the paper: 1e-4).
        weight_decay: AdamW weight decay.
        ema_decay: keep an exponential moving average of the weights and sample with it
            (``None``: sample with the trained weights).
    """

    #: Reads each item's weight (:mod:`~sclc_lightning.mixing.weighting`): a weighted loss.
    reads_item_weights = True

    mean: Tensor
    std: Tensor
    standardised: Tensor

    def __init__(
        self,
        frames: int = 32,
        features: int = 9,
        num_classes: int = 4,
        width: int = 128,
        layers: int = 4,
        heads: int = 4,
        timesteps: int = 1000,
        sampling_steps: int = 50,
        guidance: float = 2.5,
        label_dropout: float = 0.1,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        ema_decay: float | None = None,
    ) -> None:
        super().__init__()
        check_arguments(
            MotionDiffusion.__init__,
            locals(),
            **dict.fromkeys(("frames", "features", "num_classes", "width", "layers", "heads", "timesteps"), COUNT),
            sampling_steps=COUNT,
            guidance=NON_NEGATIVE,
            label_dropout=FRACTION,
            lr=POSITIVE,
            weight_decay=NON_NEGATIVE,
            ema_decay=FRACTION,
        )
        check_ema_decay(ema_decay)
        diffusers: Any = importlib.import_module("diffusers")
        self.save_hyperparameters()
        self.net = MotionDenoiser(features, frames, num_classes, width, layers, heads)
        self.ema = exponential_average(self.net, ema_decay)
        self.scheduler = diffusers.DDPMScheduler(
            num_train_timesteps=timesteps,
            beta_schedule="squaredcos_cap_v2",
            prediction_type="sample",
            clip_sample=False,
        )
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))
        self.register_buffer("standardised", torch.tensor(False))

    def _standardise(self, motions: Tensor) -> Tensor:
        if not bool(self.standardised):
            flat = motions.detach().reshape(-1, motions.shape[-1]).float()
            self.mean.copy_(flat.mean(0))
            self.std.copy_(flat.std(0).clamp_min(1e-3))
            self.standardised.fill_(True)
        return (motions - self.mean) / self.std

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        batch, weights = split_weights(batch)
        motions, labels = batch[0], torch.as_tensor(batch[1], device=self.device)
        x = self._standardise(motions)
        drop = torch.rand(labels.shape, device=self.device) < self.hparams["label_dropout"]
        labels = torch.where(drop, torch.full_like(labels, self.hparams["num_classes"]), labels)
        noise = torch.randn_like(x)
        t = torch.randint(self.hparams["timesteps"], (x.shape[0],), device=self.device)
        predicted = self.net(self.scheduler.add_noise(x, noise, t), t, labels)
        loss = weighted_mean((predicted - x).pow(2), weights)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.net)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.net.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        conditions: Any = None,
        temperature: float = 1.0,
        guidance: float | None = None,
    ) -> Tensor:
        r"""``num_samples`` motions ``(num_samples, frames, features)`` of the labels ``conditions``;
        ``temperature`` :math:`\tau` scales the initial noise (:math:`x_T \sim N(0, \tau^2 I)`) and
        ``guidance`` overrides the classifier-free guidance scale (``None``: the model's)."""
        tau = check_temperature(temperature, type(self).__name__)
        if conditions is None:
            raise ValueError("MotionDiffusion needs `conditions` (motion labels) to sample.")
        labels = torch.as_tensor(conditions, device=self.device).long().reshape(num_samples)
        empty = torch.full_like(labels, self.hparams["num_classes"])
        shape = (num_samples, self.hparams["frames"], self.hparams["features"])
        x = torch.randn(shape, generator=generator, device=generator.device if generator is not None else None)
        x = x.to(self.device) * tau
        scale = float(self.hparams["guidance"] if guidance is None else guidance)
        self.scheduler.set_timesteps(self.hparams["sampling_steps"])
        net = sampling_weights(self.ema, self.net)
        training = net.training
        net.eval()  # no dropout while sampling, whatever mode the module is in
        try:
            for t in self.scheduler.timesteps:
                steps = torch.full((num_samples,), int(t), device=self.device)
                predicted = net(x, steps, labels)
                if scale != 1.0:
                    unconditional = net(x, steps, empty)
                    predicted = unconditional + scale * (predicted - unconditional)
                x = self.scheduler.step(predicted, t, x, generator=generator).prev_sample
        finally:
            net.train(training)
        return (x * self.std + self.mean).float()
