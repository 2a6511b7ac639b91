"""Modules of the shapes users bring, none written for the loop: a token language model (items in
the Hugging Face convention or as next-token pairs), a GAN with manual optimization and two
optimizers, and a model-zoo VAE whose ``sample`` means something else."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import Dataset

VOCAB, LENGTH = 12, 6


def token_blocks(n: int, seed: int = 0) -> Tensor:
    """``n`` blocks of ``LENGTH + 1`` tokens from a fixed Markov chain (each token has 3 successors)."""
    generator = torch.Generator().manual_seed(1234)
    successors = torch.stack([torch.randperm(VOCAB, generator=generator)[:3] for _ in range(VOCAB)])
    draw = torch.Generator().manual_seed(seed)
    blocks = torch.empty(n, LENGTH + 1, dtype=torch.int64)
    blocks[:, 0] = torch.randint(VOCAB, (n,), generator=draw)
    for t in range(1, LENGTH + 1):
        blocks[:, t] = successors[blocks[:, t - 1], torch.randint(3, (n,), generator=draw)]
    return blocks


class HFTokens(Dataset[dict[str, Tensor]]):
    """``{"input_ids": x, "labels": x}``: the model shifts the targets itself."""

    def __init__(self, n: int = 48, seed: int = 0) -> None:
        self.blocks = token_blocks(n, seed)[:, :-1]

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {"input_ids": self.blocks[index], "labels": self.blocks[index].clone()}


class ShiftTokens(Dataset[tuple[Tensor, Tensor]]):
    """``(x, y)`` with ``y`` the next-token shift of ``x``."""

    def __init__(self, n: int = 48, seed: int = 0) -> None:
        self.blocks = token_blocks(n, seed)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.blocks[index, :-1], self.blocks[index, 1:]


class TokenLM(pl.LightningModule):
    """A bigram language model with a learned first-token distribution."""

    def __init__(self, convention: str = "hf", lr: float = 0.05) -> None:
        super().__init__()
        self.convention, self.lr = convention, lr
        self.start = nn.Parameter(torch.zeros(VOCAB))
        self.next = nn.Embedding(VOCAB, VOCAB)

    def targets(self, batch: Any) -> tuple[Tensor, Tensor]:
        """Inputs and their next-token targets, in the item convention of the data."""
        if self.convention == "hf":
            return batch["input_ids"][:, :-1], batch["labels"][:, 1:]
        x, y = batch
        return x, y

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, y = self.targets(batch)
        first = batch["input_ids"][:, 0] if self.convention == "hf" else x[:, 0]
        loss = F.cross_entropy(self.next(x).reshape(-1, VOCAB), y.reshape(-1))  # ignores -100
        return loss + F.cross_entropy(self.start.expand(len(first), -1), first)

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    @torch.no_grad()
    def sample(self, num_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
        tokens = torch.multinomial(self.start.softmax(-1).expand(num_samples, -1), 1, generator=generator)
        for _ in range(LENGTH - 1):
            probs = self.next(tokens[:, -1]).softmax(-1)
            tokens = torch.cat([tokens, torch.multinomial(probs, 1, generator=generator)], dim=1)
        return tokens


class GAN(pl.LightningModule):
    """A 2-D GAN trained with manual optimization: one discriminator and one generator step per batch."""

    def __init__(self, latent: int = 4, lr: float = 0.01) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.latent, self.lr = latent, lr
        self.generator = nn.Sequential(nn.Linear(latent, 16), nn.ReLU(), nn.Linear(16, 2))
        self.discriminator = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        opt_d, opt_g = self.optimizers()  # type: ignore[misc]
        z = torch.randn(len(batch), self.latent)
        fake = self.generator(z)
        real_logits, fake_logits = self.discriminator(batch), self.discriminator(fake.detach())
        loss_d = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        loss_g = F.softplus(-self.discriminator(fake)).mean()
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()

    def configure_optimizers(self) -> Any:
        return (
            torch.optim.Adam(self.discriminator.parameters(), lr=self.lr),
            torch.optim.Adam(self.generator.parameters(), lr=self.lr),
        )

    @torch.no_grad()
    def sample(self, num_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
        return self.generator(torch.randn(num_samples, self.latent, generator=generator).to(self.device))


class Digits16(Dataset[dict[str, Any]]):
    """4x4 'images' of two classes, as dicts with an int label."""

    def __init__(self, n: int = 48, seed: int = 0) -> None:
        draw = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 2
        self.images = torch.rand(n, 16, generator=draw) * 0.2 + self.labels[:, None] * 0.6

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": self.images[index], "label": int(self.labels[index])}


class ZooVAE(pl.LightningModule):
    """A VAE as model zoos write them: ``sample(mu, log_var)`` is the reparameterisation trick,
    and new images come from ``generate``."""

    def __init__(self, latent: int = 2, lr: float = 0.01) -> None:
        super().__init__()
        self.latent, self.lr = latent, lr
        self.encoder = nn.Linear(16, 2 * latent)
        self.decoder = nn.Linear(latent, 16)

    def sample(self, mu: Tensor, log_var: Tensor) -> Tensor:
        return mu + torch.randn_like(mu) * (0.5 * log_var).exp()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        mu, log_var = self.encoder(batch["image"]).chunk(2, dim=1)
        reconstruction = ((self.decoder(self.sample(mu, log_var)) - batch["image"]) ** 2).sum(1)
        kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(1)
        return (reconstruction + kl).mean()

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    @torch.no_grad()
    def generate(self, num_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
        return self.decoder(torch.randn(num_samples, self.latent, generator=generator).to(self.device))


def token_fit(root: str, ckpt_path: str | None = None, kill_at_call: int | None = None) -> TokenLM:
    """The Hugging Face token shape in accumulate mode with a checkpoint every generation; with
    ``kill_at_call`` the process kills itself (SIGKILL) at that call of the sampler (the dry run
    makes the first)."""
    import os
    import signal

    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader

    from sclc_lightning import SelfConsumingLoop

    torch.manual_seed(0)
    model = TokenLM("hf")
    if kill_at_call is not None:
        calls = {"n": 0}
        original = model.sample

        def sample(*args: Any, **kwargs: Any) -> Tensor:
            calls["n"] += 1
            if calls["n"] == kill_at_call:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        model.sample = sample  # type: ignore[method-assign]
    loop = SelfConsumingLoop(
        0.5,
        3,
        images_per_generation=16,
        mode="accumulate",
        data_field="input_ids",
        fields={"labels": "data"},
        corrector="kmeans",
        corrector_kwargs={"num_clusters": 4, "strength": 1.0},
        output_dir=f"{root}/s",
    )
    saver = ModelCheckpoint(dirpath=f"{root}/ck", save_top_k=-1, filename="{epoch}")
    trainer = pl.Trainer(
        default_root_dir=root,
        callbacks=[loop, saver],
        max_epochs=-1,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(HFTokens(48), batch_size=8, shuffle=True), ckpt_path=ckpt_path)
    return model
