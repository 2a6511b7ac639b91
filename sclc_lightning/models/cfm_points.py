"""Conditional flow matching for point clouds with Meta's ``flow_matching`` library
(Bertrand et al. 2024, Fig. 2: two moons)."""

from __future__ import annotations

from typing import Any

import torch
from flow_matching.path import AffineProbPath
from flow_matching.path.scheduler import CondOTScheduler
from flow_matching.solver import ODESolver
from flow_matching.utils import ModelWrapper
from torch import Tensor

from sclc_lightning._checks import COUNT, POSITIVE, check_arguments, plain_numbers
from sclc_lightning.mixing.weighting import split_weights, weighted_mean
from sclc_lightning.models._mlp import PointGenerator, TimeMLP
from sclc_lightning.models._sampling import check_temperature

__all__ = ["PointFlowMatching"]


class _Velocity(ModelWrapper):
    def forward(self, x: Tensor, t: Tensor, **extras: Any) -> Tensor:
        return self.model(x, t.expand(x.shape[0]) if t.dim() == 0 else t)


@plain_numbers
class PointFlowMatching(PointGenerator):
    """Flow matching with the conditional optimal-transport path from N(0, I) to the data.

    Args:
        dim: point dimension.
        hidden: MLP width.
        layers: MLP hidden layers.
        sampling_steps: midpoint ODE steps when sampling.
        lr: Adam learning rate.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, layers: int = 3, sampling_steps: int = 50, lr: float = 1e-3):
        super().__init__()
        check_arguments(
            PointFlowMatching.__init__,
            locals(),
            **dict.fromkeys(("dim", "hidden", "layers", "sampling_steps"), COUNT),
            lr=POSITIVE,
        )
        self.save_hyperparameters()
        self.velocity = TimeMLP(dim, hidden, layers)
        self.path = AffineProbPath(scheduler=CondOTScheduler())
        self.sampling_steps, self.lr = sampling_steps, lr

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        batch, weights = split_weights(batch)
        x1 = self.points(batch)
        x0 = torch.randn_like(x1)
        t = torch.rand(x1.shape[0], device=x1.device)
        sample = self.path.sample(x_0=x0, x_1=x1, t=t)
        return self.logged(weighted_mean((self.velocity(sample.x_t, sample.t) - sample.dx_t).pow(2), weights))

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        conditions: Any = None,
        temperature: float = 1.0,
    ) -> Tensor:
        r"""Integrate the learned velocity from noise, shape ``(num_samples, dim)``; ``temperature``
        :math:`\tau` scales the initial noise (:math:`x_0 \sim N(0, \tau^2 I)`), the ODE is unchanged."""
        tau = check_temperature(temperature, type(self).__name__)
        x0 = tau * torch.randn(num_samples, self.hparams["dim"], generator=generator).to(self.device)
        solver = ODESolver(velocity_model=_Velocity(self.velocity))
        grid = torch.tensor([0.0, 1.0], device=self.device)
        out: Tensor = solver.sample(x_init=x0, step_size=1.0 / self.sampling_steps, method="midpoint", time_grid=grid)
        return out
