"""The reference arms and the built-in methods of ``sclc bench``.

The two reference arms run on every task with the same seeds as the methods, since the score
needs them:

- ``real_only``: real data only, :math:`\\lambda = 0` with ``augment`` (``replace`` refuses
  :math:`\\lambda = 0`), the same training budget;
- ``uncorrected``: the task's recipe as it is, its collapse setting.

The built-in methods (``--builtin`` adds them all) are the field's known answers. A method whose
settings depend on the task (a subset size, a number of clusters, Neon's weight) takes them from
the task's ``parts``, and is skipped on a task that gives none; one that needs continuous data
with no condition or a class label (optimal transport and KMeans move generated points towards
the real pool, within a class) or a model's likelihood is skipped where the task lacks them, with
the reason in the card.
"""

from __future__ import annotations

import dataclasses

from sclc_lightning.bench.methods import Method

__all__ = ["BUILTIN_METHODS", "REFERENCES"]

#: The reference arms, by name.
REFERENCES: dict[str, Method] = {
    "real_only": Method("real_only", {"synthetic_fraction": 0.0, "mode": "augment"}),
    "uncorrected": Method("uncorrected", {}),
}

_OT = "optimal_transport"
#: Correctors that move generated points towards the real ones: continuous data, and no condition
#: or a class label (within which they match; a continuous condition has no real pool to match).
_POINTS = ("continuous", "unconditional|labels")

#: The built-in methods, by name.
BUILTIN_METHODS: dict[str, Method] = {
    method.name: dataclasses.replace(method, builtin=True)
    for method in (
        Method("accumulate", {"mode": "accumulate"}),
        Method("accumulate_subsample", {"mode": "accumulate"}, part="accumulate_subsample"),
        Method("fresh", {"mode": "fresh"}, part="fresh"),
        Method("ot_1", {"corrector": _OT, "corrector_kwargs": {"strength": 1.0}}, needs=_POINTS),
        Method("ot_inf", {"corrector": _OT, "corrector_kwargs": {"strength": float("inf")}}, needs=_POINTS),
        Method("kmeans", {"corrector": "kmeans"}, needs=_POINTS, part="kmeans"),
        Method(
            "verify_likelihood",
            {
                "corrector": "verify",
                "corrector_kwargs": {"verifier": "model_log_prob", "rule": "top_fraction", "fraction": 0.5},
            },
            needs=("log_prob",),
        ),
        Method("neon", {}, part="neon"),
    )
}
