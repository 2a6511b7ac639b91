r"""The KMeans projection corrector of the Gillman et al. MNIST experiment.

Cluster centres are fitted once on the real data (per class when the items carry a class
condition); each synthetic point moves toward its nearest centre :math:`c(y)`:

.. math::
    \pi_\gamma(y) = \frac{y + \gamma\, c(y)}{1 + \gamma},

so :math:`\gamma = \infty` puts it on the centre (the authors' code).

On tokens (integer or boolean data) a mean of token ids has no meaning. There the centres are
*medoids*: real sequences chosen by k-medoids under the Hamming distance (FasterPAM, from the
``kmedoids`` package of the ``text`` extra), and a point moves to its nearest medoid by taking each position's token
from it with probability :math:`\gamma/(1+\gamma)`; :math:`\gamma = \infty` (the default)
replaces it by that real sequence. k-medoids reads the whole distance matrix of a class's real
items: :math:`O(n^2)` memory (80 MB for 3,000 sequences).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from sclc_lightning._checks import COUNT, bounded, check_arguments, plain_numbers
from sclc_lightning._extras import require
from sclc_lightning.correctors.base import Corrector, register_corrector
from sclc_lightning.correctors.ot import pairwise_distance
from sclc_lightning.items.codec import SyntheticBatch
from sclc_lightning.items.real import RealData

__all__ = ["KMeansCorrector"]

_ON_TOKENS = "The `kmeans` corrector on tokens (k-medoids)"


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
@plain_numbers
class KMeansCorrector(Corrector):
    r"""Move points toward the nearest of ``num_clusters`` KMeans centres of the real data.

    Args:
        strength: :math:`\gamma` (``float("inf")`` projects onto the centre).
        num_clusters: centres per class (16 in the authors' MNIST code).
        per_class: fit centres per class when the items have a condition field.
        n_init: KMeans (or k-medoids) restarts.
    """

    deciding = ("num_clusters", "per_class", "n_init")
    pointwise = True
    ranges = bounded(num_clusters=COUNT, n_init=COUNT)

    def __init__(self, strength: float = float("inf"), num_clusters: int = 16, per_class: bool = True, n_init: int = 3):
        super().__init__(strength)
        check_arguments(KMeansCorrector, locals())
        self.num_clusters = int(num_clusters)
        self.per_class = bool(per_class)
        self.n_init = int(n_init)
        self.centres: dict[Any, Tensor] = {}

    def check_items(self, reference: RealData) -> None:
        super().check_items(reference)
        codec = reference.codec
        if codec.is_discrete:
            require("kmedoids", "text", _ON_TOKENS)
        if self.per_class and codec.condition_key is not None:
            condition = codec.field(reference.items([0])[0], codec.condition_key)
            if isinstance(condition, Tensor) and condition.dim() != 0:
                raise ValueError(
                    "KMeansCorrector fits centres per class and needs one class label per item, but the condition"
                    f" field {codec.condition_key!r} holds tensors of shape {tuple(condition.shape)}; set"
                    " per_class=False."
                )

    def _fit(self, points: Tensor, seed: int) -> Tensor:
        """The centres of ``points`` (flattened rows): KMeans means, or Hamming medoids for tokens."""
        k = min(self.num_clusters, points.shape[0])
        if points.is_floating_point():
            from sklearn.cluster import KMeans

            model = KMeans(n_clusters=k, n_init=self.n_init, random_state=seed).fit(points.double().numpy())
            return torch.from_numpy(np.asarray(model.cluster_centers_))
        kmedoids = require("kmedoids", "text", _ON_TOKENS)
        distance = pairwise_distance(points, points).numpy()
        best: Any = None
        for attempt in range(self.n_init):  # FasterPAM from several random starts, the lowest loss
            result = kmedoids.fasterpam(distance, k, random_state=seed + attempt, n_cpu=1)
            if best is None or result.loss < best.loss:
                best = result
        return points[torch.from_numpy(np.asarray(best.medoids, dtype=np.int64))]

    def setup(self, reference: RealData, generator: torch.Generator) -> None:
        data = reference.data().flatten(1)
        keys = _class_keys(reference.conditions() if self.per_class else None, data.shape[0])
        self.centres = {}
        for key in sorted(set(keys), key=repr):
            rows = torch.tensor([i for i, k in enumerate(keys) if k == key])
            seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
            self.centres[key] = self._fit(data[rows], seed)

    def nearest_centres(self, points: Tensor, conditions: Any) -> Tensor:
        """The nearest centre (of the point's class) of each point, shape like ``points``
        (float64 means for float data; for tokens, medoids in the tokens' dtype)."""
        if not self.centres:
            raise RuntimeError("KMeansCorrector.setup must run before correct.")
        flat = points.flatten(1)
        keys = _class_keys(conditions if self.per_class else None, flat.shape[0])
        out = torch.empty(flat.shape, dtype=torch.float64 if flat.is_floating_point() else flat.dtype)
        for key in set(keys):
            if key not in self.centres:
                raise ValueError(f"KMeansCorrector has no centres for class {key!r}.")
            rows = torch.tensor([i for i, k in enumerate(keys) if k == key])
            centres = self.centres[key]
            out[rows] = centres[pairwise_distance(flat[rows], centres).argmin(dim=1)]
        return out.view(points.shape)

    def correct(
        self, batch: SyntheticBatch, *, generation: int, generator: torch.Generator, reference: RealData
    ) -> Tensor:
        if len(batch) == 0:
            return batch.data
        return self.mix(batch.data, self.nearest_centres(batch.data, batch.conditions), generator)
