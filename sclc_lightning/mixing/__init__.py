"""How real and synthetic data are mixed: the mixing policies (augment, accumulate, replace,
fresh, and the user's own), the mixed dataset and its sampler, and the fixed training budget.

- :mod:`~sclc_lightning.mixing.policies`: :class:`MixingPolicy` and its registry;
- :mod:`~sclc_lightning.mixing.dataset`: :class:`MixedDataset`, :class:`GenerationSampler`;
- :mod:`~sclc_lightning.mixing.budget`: ⌊λn⌋, rank shares and :class:`TrainingBudget`;
- :mod:`~sclc_lightning.mixing.weighting`: per-source weights, as item weights
  (:class:`Weighted`, :func:`split_weights`, :func:`weighted_mean`) or sampling probabilities.
"""

from sclc_lightning.mixing.budget import TrainingBudget, budget_order, num_synthetic, rank_slice, resolve_budget
from sclc_lightning.mixing.dataset import GenerationSampler, MixedDataset
from sclc_lightning.mixing.policies import (
    AccumulatePolicy,
    AugmentPolicy,
    FreshPolicy,
    GenerationPlan,
    MixingPolicy,
    ReplacePolicy,
    available_mixing_policies,
    get_mixing_policy_class,
    make_mixing_policy,
    plan_generation,
    register_mixing_policy,
)
from sclc_lightning.mixing.weighting import Weighted, split_weights, weighted_mean

__all__ = [
    "AccumulatePolicy",
    "AugmentPolicy",
    "FreshPolicy",
    "GenerationPlan",
    "GenerationSampler",
    "MixedDataset",
    "MixingPolicy",
    "ReplacePolicy",
    "TrainingBudget",
    "Weighted",
    "available_mixing_policies",
    "budget_order",
    "get_mixing_policy_class",
    "make_mixing_policy",
    "num_synthetic",
    "plan_generation",
    "rank_slice",
    "register_mixing_policy",
    "resolve_budget",
    "split_weights",
    "weighted_mean",
]
