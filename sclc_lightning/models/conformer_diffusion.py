r"""An E(3)-equivariant denoising diffusion model of molecular conformers given the molecular graph,
after GeoDiff (Xu et al. 2022), the model Gerstgrasser et al. (2024) train on their own
conformers: an EGNN (Satorras et al. 2021) written with torch-geometric's ``MessagePassing``
predicts the noise of the atom positions, and diffusers' ``DDPMScheduler`` runs the diffusion.

Positions diffuse in the subspace of zero centre of mass (Hoogeboom et al. 2022): the noise is
projected on it, and the network's output, a displacement of the positions, is equivariant to
rotations and reflections and invariant to translations, so the learned density is
E(3)-invariant. The graph enters as edge features: every pair of atoms of a molecule is an
edge, typed by its bond (none, single, double, triple, aromatic) and by how many bonds apart the
two atoms are (1, 2, 3, more), which carries bond lengths, angles and torsions.
"""

from __future__ import annotations

import importlib
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
from sclc_lightning._extras import require
from sclc_lightning.mixing.weighting import split_weights, weighted_mean
from sclc_lightning.models._sampling import check_temperature, exponential_average, sampling_weights

__all__ = ["ConformerDiffusion", "EquivariantLayer", "centred"]

# torch-geometric's message passing is a base class: importing this module needs the chem extra
_geometric: Any = require("torch_geometric.nn", "chem", "ConformerDiffusion (torch-geometric)")

#: Edge types: bond codes (0 none, 1 single, 2 double, 3 triple, 4 aromatic) and hop buckets.
_BOND_CODES, _HOPS = 5, 4
#: Messages are summed over the neighbours and divided by this (about the atoms of a molecule).
_NORMALISER = 10.0


def centred(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` (``(batch, atoms, 3)``) minus each molecule's centre over its ``mask`` atoms; zero on
    the padding rows.

    Examples:
        >>> x = torch.tensor([[[1.0, 0, 0], [3.0, 0, 0], [9.0, 9, 9]]])
        >>> centred(x, torch.tensor([[True, True, False]]))[0].tolist()
        [[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    weights = mask[..., None].to(x.dtype)
    centre = (x * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp_min(1.0)
    return (x - centre) * weights


class EquivariantLayer(_geometric.MessagePassing):
    r"""One EGNN layer: messages :math:`m_{ij} = \phi_e(h_i, h_j, \lVert x_i - x_j\rVert^2, a_{ij})`,
    positions :math:`x_i + \operatorname{mean}_j \frac{x_i - x_j}{\lVert x_i - x_j\rVert + 1} \phi_x(m_{ij})`
    and features :math:`h_i + \phi_h(h_i, \operatorname{mean}_j m_{ij})`."""

    def __init__(self, width: int, edge_features: int) -> None:
        super().__init__(aggr="add")
        self.edge = nn.Sequential(
            nn.Linear(2 * width + 1 + edge_features, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU()
        )
        self.gate = nn.Sequential(nn.Linear(width, 1), nn.Sigmoid())
        self.coord = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 1))
        self.node = nn.Sequential(nn.Linear(2 * width, width), nn.SiLU(), nn.Linear(width, width))
        self.norm = nn.LayerNorm(width)

    def forward(self, h: Tensor, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> tuple[Tensor, Tensor]:
        out = self.propagate(edge_index, h=h, x=x, edge_attr=edge_attr)
        messages, shift = out[:, :-3], out[:, -3:]
        return self.norm(h + self.node(torch.cat([h, messages], dim=-1))), x + shift

    def message(self, h_i: Tensor, h_j: Tensor, x_i: Tensor, x_j: Tensor, edge_attr: Tensor) -> Tensor:
        diff = x_i - x_j
        squared = diff.pow(2).sum(-1, keepdim=True)
        messages = self.edge(torch.cat([h_i, h_j, squared, edge_attr], dim=-1))
        messages = messages * self.gate(messages)
        shift = diff / (squared.sqrt() + 1.0) * self.coord(messages)
        return torch.cat([messages, shift], dim=-1) / _NORMALISER


def _edges(graph: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``edge_index`` (every ordered pair of atoms of a molecule, source first) and
    one-hot edge features (bond code, hops) of a padded batch of graph matrices."""
    batch, atoms = mask.shape
    ids = torch.full((batch, atoms), -1, dtype=torch.long, device=mask.device)
    ids[mask] = torch.arange(int(mask.sum()), device=mask.device)
    eye = torch.eye(atoms, dtype=torch.bool, device=mask.device)
    pairs = mask[:, :, None] & mask[:, None, :] & ~eye
    bonded = ((graph > 0) & pairs).float()
    two = (bonded @ bonded > 0) & pairs
    three = (two.float() @ bonded > 0) & pairs
    hops = torch.full_like(graph, _HOPS - 1)
    hops = torch.where(three, 2, hops)
    hops = torch.where(two, 1, hops)
    hops = torch.where(bonded > 0, 0, hops)
    b, i, j = pairs.nonzero(as_tuple=True)
    codes = torch.where(pairs, graph, 0)[b, i, j].clamp(0, _BOND_CODES - 1)
    features = torch.cat(
        [nn.functional.one_hot(codes, _BOND_CODES), nn.functional.one_hot(hops[b, i, j], _HOPS)], dim=-1
    ).float()
    return torch.stack([ids[b, j], ids[b, i]]), features


class ConformerNet(nn.Module):
    """The EGNN noise predictor: atom-type and time embeddings, ``layers`` :class:`EquivariantLayer`."""

    def __init__(self, width: int, layers: int) -> None:
        super().__init__()
        self.width = width
        self.element = nn.Embedding(128, width)
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.layers = nn.ModuleList(EquivariantLayer(width, _BOND_CODES + _HOPS) for _ in range(layers))

    def forward(
        self, x: Tensor, t: Tensor, graph: Tensor, mask: Tensor, edges: tuple[Tensor, Tensor] | None = None
    ) -> Tensor:
        """The predicted noise ``(batch, atoms, 3)`` of positions ``x`` at timesteps ``t``; ``edges``:
        the graph's ``(edge_index, edge_attr)`` when already computed (sampling reuses them)."""
        embeddings: Any = importlib.import_module("diffusers.models.embeddings")
        edge_index, edge_attr = edges if edges is not None else _edges(graph, mask)
        batch_of = torch.arange(mask.shape[0], device=mask.device)[:, None].expand_as(mask)[mask]
        time = self.time(embeddings.get_timestep_embedding(t, self.width).to(x.dtype))
        h = self.element(graph.diagonal(dim1=1, dim2=2)[mask].clamp(0, 127)) + time[batch_of]
        start = x[mask]
        moved = start
        for layer in self.layers:
            h, moved = layer(h, moved, edge_index, edge_attr)
        out = torch.zeros_like(x)
        out[mask] = moved - start
        return centred(out, mask)


@plain_numbers
class ConformerDiffusion(pl.LightningModule):
    r"""Diffusion over the atom positions of a molecule given its graph; items are dicts with
    ``"pos"`` (``(atoms, 3)``, Å, the generated field) and ``"graph"`` (the graph matrix of
    :func:`sclc_lightning.chemistry.graph_matrix`, the condition), as
    :class:`~sclc_lightning.datasets.molecules.ConformerDataModule` makes them.

    Training minimises the noise-prediction error
    :math:`\mathbb{E}_{t,\epsilon}\lVert\epsilon - \hat\epsilon(x_t, t)\rVert^2` per coordinate,
    the variational bound with DDPM's weighting (Ho et al. 2020), which :meth:`score_items`
    reports on held-out conformers as ``loss``, with the same draws every generation.

    Args:
        width: features per atom and message.
        layers: EGNN layers.
        timesteps: diffusion steps in training.
        sampling_steps: reverse steps when sampling.
        scale: positions are divided by it (Å) so that they have about unit spread.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        eval_draws: noise draws per held-out conformer in :meth:`score_items`.
        clip_radius: when sampling, each step's prediction of the clean conformer keeps every
            atom within this distance (Å) of the centre, shrinking it radially (the conformer
            analogue of DDPM's clipping of the predicted image, and E(3)-equivariant); far
            beyond any molecule's atoms, so it acts only on an untrained or diverging network,
            whose samples it keeps finite. ``None``: no clipping.
        ema_decay: keep an exponential moving average of the weights (updated after every
            training step, carried from generation to generation) and sample and score with it;
            ``None`` (default): the trained weights.
    """

    #: Reads each item's weight (:mod:`~sclc_lightning.mixing.weighting`): a weighted loss.
    reads_item_weights = True

    def __init__(
        self,
        width: int = 64,
        layers: int = 4,
        timesteps: int = 1000,
        sampling_steps: int = 100,
        scale: float = 2.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        eval_draws: int = 4,
        clip_radius: float | None = 20.0,
        ema_decay: float | None = None,
    ) -> None:
        super().__init__()
        check_arguments(
            ConformerDiffusion.__init__,
            locals(),
            **dict.fromkeys(("width", "layers", "timesteps", "sampling_steps", "eval_draws"), COUNT),
            scale=POSITIVE,
            lr=POSITIVE,
            weight_decay=NON_NEGATIVE,
            clip_radius=POSITIVE,
            ema_decay=FRACTION,
        )
        check_ema_decay(ema_decay)
        diffusers: Any = importlib.import_module("diffusers")
        self.save_hyperparameters()
        self.net = ConformerNet(width, layers)
        self.ema = exponential_average(self.net, ema_decay)
        self.scheduler = diffusers.DDPMScheduler(
            num_train_timesteps=timesteps,
            beta_schedule="squaredcos_cap_v2",
            prediction_type="epsilon",
            clip_sample=False,
        )

    def sampling_net(self) -> nn.Module:
        """The EMA weights when kept (and updated at least once), else the trained ones."""
        return sampling_weights(self.ema, self.net)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.net)

    def _loss(
        self, batch: dict[str, Tensor], generator: torch.Generator | None = None, net: nn.Module | None = None
    ) -> Tensor:
        """Per-item noise-prediction error of a batch (one draw of ``t`` and the noise per item), of
        ``net`` (default: the trained weights)."""
        graph = batch["graph"].to(self.device)
        mask = graph.diagonal(dim1=1, dim2=2) > 0
        x = centred(batch["pos"].to(self.device).float() / self.hparams["scale"], mask)
        where = generator.device if generator is not None else self.device
        noise = centred(torch.randn(x.shape, generator=generator, device=where).to(self.device), mask)
        t = torch.randint(self.hparams["timesteps"], (x.shape[0],), generator=generator, device=where).to(self.device)
        predicted = (net or self.net)(self.scheduler.add_noise(x, noise, t), t, graph, mask)
        squared = (predicted - noise).pow(2).sum((1, 2))
        return squared / (3 * mask.sum(1).clamp_min(1))

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        batch, weights = split_weights(batch)
        loss = weighted_mean(self._loss(batch), weights)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["pos"]))
        return loss

    @torch.no_grad()
    def score_items(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """``loss``: each item's noise-prediction error, averaged over ``eval_draws`` draws seeded
        by ``batch_idx`` (the same draws at every generation, so generations compare), with the
        weights that sample (:meth:`sampling_net`)."""
        generator = torch.Generator().manual_seed(10_007 * batch_idx + 1)
        net = self.sampling_net()
        draws = [self._loss(batch, generator, net) for _ in range(self.hparams["eval_draws"])]
        return {"loss": torch.stack(draws).mean(0)}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        hparams = self.hparams
        return torch.optim.AdamW(self.net.parameters(), lr=hparams["lr"], weight_decay=hparams["weight_decay"])

    def _clipped(self, x: Tensor, noise: Tensor, t: int) -> Tensor:
        """The predicted noise at step ``t``, changed so that the clean conformer it implies keeps
        every atom within ``clip_radius`` of the centre (unchanged when it already does)."""
        radius = self.hparams.get("clip_radius")
        if radius is None:
            return noise
        signal = self.scheduler.alphas_cumprod[t].to(x)
        clean = (x - (1 - signal).sqrt() * noise) / signal.sqrt()
        limit = min(radius / self.hparams["scale"], torch.finfo(x.dtype).max)  # a radius past float range: no clip
        clean = clean * (limit / clean.norm(dim=-1, keepdim=True).clamp_min(limit))
        return (x - signal.sqrt() * clean) / (1 - signal).sqrt()

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        conditions: Any = None,
        temperature: float = 1.0,
    ) -> Tensor:
        r"""``num_samples`` conformers ``(num_samples, atoms, 3)`` in Å of the molecules whose graph
        matrices are ``conditions`` (zero on the padding rows); ``temperature`` :math:`\tau`
        scales the initial noise. All randomness comes from ``generator``."""
        tau = check_temperature(temperature, type(self).__name__)
        if conditions is None:
            raise ValueError("ConformerDiffusion needs `conditions` (graph matrices) to sample.")
        graph = torch.as_tensor(conditions, device=self.device).long()
        if graph.dim() != 3 or graph.shape[0] != num_samples or graph.shape[1] != graph.shape[2]:
            raise ValueError(
                f"ConformerDiffusion.sample: `conditions` must be {num_samples} graph matrices (n, atoms, atoms),"
                f" got shape {tuple(graph.shape)}."
            )
        mask = graph.diagonal(dim1=1, dim2=2) > 0
        shape = (num_samples, graph.shape[1], 3)
        x = torch.randn(shape, generator=generator, device=generator.device if generator is not None else None)
        x = centred(x.to(self.device), mask) * tau
        self.scheduler.set_timesteps(self.hparams["sampling_steps"])
        edges = _edges(graph, mask)  # the same graph at every step
        net = self.sampling_net()
        training = net.training
        net.eval()
        try:
            for t in self.scheduler.timesteps:
                steps = torch.full((num_samples,), int(t), device=self.device)
                noise = self._clipped(x, net(x, steps, graph, mask, edges), int(t))
                x = centred(self.scheduler.step(noise, t, x, generator=generator).prev_sample, mask)
        finally:
            net.train(training)
        return (x * self.hparams["scale"]).float()
