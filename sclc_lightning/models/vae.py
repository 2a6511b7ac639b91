r"""A variational autoencoder on small images (Shumailov et al. 2024 on MNIST-like digits;
Gerstgrasser et al. 2024 on CelebA: under ``replace`` the test loss degrades and the samples lose
their modes, under ``accumulate`` the test loss stays flat).

Encoder and decoder are MLPs; pixels in :math:`[-1, 1]` are modelled as Bernoulli means of
:math:`(x+1)/2` (the usual binarised-MNIST likelihood applied to grey levels). Samples are the
decoder's means at latents :math:`z \sim N(0, I)`, mapped back to :math:`[-1, 1]`.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sclc_lightning._checks import COUNT, NON_NEGATIVE, POSITIVE, check_arguments, plain_numbers
from sclc_lightning.mixing.weighting import split_weights, weighted_mean
from sclc_lightning.models._sampling import check_temperature

__all__ = ["ImageVAE"]


@plain_numbers
class ImageVAE(pl.LightningModule):
    """A VAE with MLP encoder and decoder.

    Args:
        image_size: height and width of the (square) images.
        channels: image channels.
        latent_dim: dimension of :math:`z`.
        hidden: width of the hidden layers.
        lr: Adam's learning rate.
        eval_seed: seeds the latent draws of :meth:`score_items`, so that a generation's held-out
            bound does not depend on the training's random state.

    :meth:`score_items` gives each item's negative evidence lower bound in nats (``nelbo``), for
    :class:`~sclc_lightning.callbacks.HeldOutScores`. Items may be images or tuples whose first
    field is one (labels are ignored).
    """

    #: Reads each item's weight (:mod:`~sclc_lightning.mixing.weighting`): a weighted loss.
    reads_item_weights = True

    def __init__(
        self,
        image_size: int = 8,
        channels: int = 1,
        latent_dim: int = 8,
        hidden: int = 256,
        lr: float = 1e-3,
        eval_seed: int = 0,
    ) -> None:
        super().__init__()
        check_arguments(
            ImageVAE.__init__,
            locals(),
            **dict.fromkeys(("image_size", "channels", "latent_dim", "hidden"), COUNT),
            lr=POSITIVE,
            eval_seed=NON_NEGATIVE,
        )
        self.save_hyperparameters()
        self.shape = (channels, image_size, image_size)
        pixels = channels * image_size * image_size
        self.latent_dim, self.lr, self.eval_seed = latent_dim, lr, eval_seed
        self.encoder = nn.Sequential(nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.to_latent = nn.Linear(hidden, 2 * latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, pixels)
        )

    @staticmethod
    def _images(batch: Any) -> Tensor:
        images: Tensor = batch[0] if isinstance(batch, (tuple, list)) else batch
        return images

    def nelbo(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Each image's negative ELBO (nats), one latent draw per image, shape ``(N,)``."""
        target = ((images.flatten(1).float() + 1) / 2).clamp(0, 1)
        mean, log_var = self.to_latent(self.encoder(images.flatten(1).float())).chunk(2, dim=1)
        device = generator.device if generator is not None else mean.device
        noise = torch.randn(mean.shape, generator=generator, device=device).to(mean)
        z = mean + (0.5 * log_var).exp() * noise
        reconstruction = F.binary_cross_entropy_with_logits(self.decoder(z), target, reduction="none").sum(1)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(1)
        return reconstruction + kl

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        batch, weights = split_weights(batch)
        loss = weighted_mean(self.nelbo(self._images(batch)), weights)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    @torch.no_grad()
    def score_items(self, batch: Any, batch_idx: int = 0) -> dict[str, Tensor]:
        """Per-item held-out scores: ``nelbo`` (nats per image, lower is better)."""
        generator = torch.Generator().manual_seed(self.eval_seed + batch_idx)
        return {"nelbo": self.nelbo(self._images(batch).to(self.device), generator)}

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        conditions: Any = None,
        temperature: float = 1.0,
    ) -> Tensor:
        r"""Decoder means at ``num_samples`` latents from the prior, ``(N, C, H, W)`` in [-1, 1];
        ``temperature`` :math:`\tau` scales the latents (:math:`z \sim N(0, \tau^2 I)`)."""
        tau = check_temperature(temperature, type(self).__name__)
        device = generator.device if generator is not None else None
        z = tau * torch.randn(num_samples, self.latent_dim, generator=generator, device=device).to(self.device)
        return (torch.sigmoid(self.decoder(z)) * 2 - 1).reshape(num_samples, *self.shape)
