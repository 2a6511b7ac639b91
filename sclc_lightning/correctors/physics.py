r"""The physics corrector: a simulator replays every synthetic motion (Gillman et al. §6).

The paper corrects generated human motions with UHC, an imitation policy in MuJoCo that returns
the closest physically feasible motion. Here a PD tracking controller with torque limits and weak
residual root forces follows each motion of the planar biped (:mod:`sclc_lightning.physics`) and
the motion the simulator actually produced replaces it: floor penetration, floating, foot skating
and joint-limit violations disappear, up to what the residual forces allow.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from sclc_lightning._checks import COUNT, NON_NEGATIVE, bounded, check_arguments, plain_numbers
from sclc_lightning._extras import require
from sclc_lightning.correctors.base import Corrector, register_corrector
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.items.real import RealData

__all__ = ["PhysicsCorrector"]


@register_corrector("physics")
@plain_numbers
class PhysicsCorrector(Corrector):
    r"""Replace each motion ``(frames, 9)`` by its simulated replay, blended with strength γ.

    Motions are simulated independently (each from its own first frame), in ``num_workers``
    worker processes, ``chunk_size`` motions per task, so the result is the same for any number
    of workers. :math:`\gamma = \infty` (the default) is the paper's full replacement.

    Args:
        strength: :math:`\gamma`.
        num_workers: worker processes (default: the CPU cores this process may use; ``0`` runs in
            this process).
        chunk_size: motions per task.
        kp: joint PD stiffness of the tracking controller (torques are clipped to the body's
            actuator limits).
        kd: joint PD damping.
        smooth: standard deviation, in frames, of a Gaussian low-pass of the targets before
            tracking (``0``: track the motion as it is).
        start_method: multiprocessing start method of the workers (default ``fork`` where
            available: workers start at once; ``spawn`` re-imports the package in each worker).
    """

    deciding = ("kp", "kd", "smooth")
    pointwise = True
    operational = ("num_workers", "chunk_size", "start_method")
    ranges = bounded(
        num_workers=NON_NEGATIVE,
        chunk_size=COUNT,
        kp=NON_NEGATIVE,
        kd=NON_NEGATIVE,
        smooth=NON_NEGATIVE,
    )

    supports = frozenset({"continuous", "conditional"})

    def __init__(
        self,
        strength: float = math.inf,
        num_workers: int | None = None,
        chunk_size: int = 16,
        kp: float = 400.0,
        kd: float = 25.0,
        smooth: float = 1.0,
        start_method: Literal["fork", "spawn", "forkserver"] | None = None,
    ) -> None:
        super().__init__(strength)
        from sclc_lightning._process import default_workers

        check_arguments(PhysicsCorrector, locals())
        self.num_workers = default_workers() if num_workers is None else num_workers
        self.chunk_size, self.kp, self.kd, self.start_method = chunk_size, kp, kd, start_method
        self.smooth = float(smooth)
        require("mujoco", "physics", "The `physics` corrector")

    def simulate(self, motions: Tensor) -> Tensor:
        """The simulated replay of every motion of ``(num, frames, 9)`` (no blending)."""
        from sclc_lightning.physics.sim import TRACKING, track_motions

        if motions.dim() != 3 or motions.shape[-1] != 9:
            raise ValueError(f"PhysicsCorrector needs motions shaped (num, frames, 9), got {tuple(motions.shape)}.")
        with self.progress(len(motions), "Simulating motions") as bar:
            out = track_motions(
                motions.detach().cpu().double().numpy(),
                num_workers=self.num_workers,
                chunk_size=self.chunk_size,
                gains=dataclasses.replace(TRACKING, kp=self.kp, kd=self.kd),
                progress=bar.update,
                start_method=self.start_method,
                smooth=self.smooth,
            )
        return torch.from_numpy(np.ascontiguousarray(out)).to(motions.dtype)

    def correct(
        self, batch: SyntheticBatch, *, generation: int, generator: torch.Generator, reference: RealData
    ) -> Tensor:
        if len(batch) == 0:
            return batch.data
        return self.mix(batch.data, self.simulate(batch.data))
