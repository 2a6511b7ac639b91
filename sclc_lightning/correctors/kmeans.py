r"""The KMeans projection corrector of the Gillman et al. MNIST experiment.

Cluster centres are fitted once on the real data (per class when the items carry a class
condition); each synthetic point moves toward its nearest centre :math:`c(y)`:

.. math::
    \pi_\gamma(y) = \frac{y + \gamma\, c(y)}{1 + \gamma},

so :math:`\gamma = \infty` puts it on the centre (the authors' code).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import Tensor

from sclc_lightning.correctors.base import Corrector, register_corrector
from sclc_lightning.data.items import SyntheticBatch
from sclc_lightning.data.real import RealData

__all__ = ["KMeansCorrector"]


def _class_keys(conditions: Any, num: int) -> list[Any]:
    if conditions is None:
        return [None] * num
    if isinstance(conditions, Tensor):
        if conditions.dim() != 1:
            raise ValueError(
                "KMeansCorrector fits centres per class and needs one class label per item,"
                f" got conditions of shape {tuple(conditions.shape)}; set per_class=False."
            )
        return conditions.tolist()
    return list(conditions)


@register_corrector("kmeans")
class KMeansCorrector(Corrector):
    r"""Move points toward the nearest of ``num_clusters`` KMeans centres of the real data.

    Args:
        strength: :math:`\gamma` (``float("inf")`` projects onto the centre).
        num_clusters: centres per class (16 in the authors' MNIST code).
        per_class: fit centres per class when the items have a condition field.
        n_init: KMeans restarts.
    """

    def __init__(self, strength: float = float("inf"), num_clusters: int = 16, per_class: bool = True, n_init: int = 3):
        super().__init__(strength)
        if num_clusters < 1:
            raise ValueError(f"`num_clusters` must be >= 1, got {num_clusters!r}.")
        self.num_clusters = num_clusters
        self.per_class = per_class
        self.n_init = n_init
        self.centres: dict[Any, Tensor] = {}

    def setup(self, reference: RealData, generator: torch.Generator) -> None:
        data = reference.data().flatten(1).double()
        keys = _class_keys(reference.conditions() if self.per_class else None, data.shape[0])
        self.centres = {}
        for key in sorted(set(keys), key=repr):
            rows = torch.tensor([i for i, k in enumerate(keys) if k == key])
            points = data[rows].numpy()
            k = min(self.num_clusters, points.shape[0])
            seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
            model = KMeans(n_clusters=k, n_init=self.n_init, random_state=seed).fit(points)
            self.centres[key] = torch.from_numpy(np.asarray(model.cluster_centers_))

    def nearest_centres(self, points: Tensor, conditions: Any) -> Tensor:
        """The nearest centre (of the point's class) of each point, shape like ``points``."""
        if not self.centres:
            raise RuntimeError("KMeansCorrector.setup must run before correct.")
        flat = points.flatten(1).double()
        keys = _class_keys(conditions if self.per_class else None, flat.shape[0])
        out = torch.empty_like(flat)
        for key in set(keys):
            if key not in self.centres:
                raise ValueError(f"KMeansCorrector has no centres for class {key!r}.")
            rows = torch.tensor([i for i, k in enumerate(keys) if k == key])
            centres = self.centres[key]
            out[rows] = centres[torch.cdist(flat[rows], centres).argmin(dim=1)]
        return out.view(points.shape)

    def correct(
        self, batch: SyntheticBatch, *, generation: int, generator: torch.Generator, reference: RealData
    ) -> Tensor:
        if len(batch) == 0:
            return batch.data
        return self.mix(batch.data, self.nearest_centres(batch.data, batch.conditions))
