"""Data machinery of the loop: item structure, budgets, mixing, the synthetic store."""

from sclc_lightning.data.budget import (
    TrainingBudget,
    budget_order,
    derive_seed,
    make_generator,
    num_synthetic,
    rank_slice,
    resolve_budget,
)
from sclc_lightning.data.items import ItemCodec, SyntheticBatch
from sclc_lightning.data.mixing import MODES, GenerationPlan, GenerationSampler, MixedDataset, plan_generation
from sclc_lightning.data.real import RealData
from sclc_lightning.data.store import SyntheticSet, SyntheticStore

__all__ = [
    "MODES",
    "GenerationPlan",
    "GenerationSampler",
    "ItemCodec",
    "MixedDataset",
    "RealData",
    "SyntheticBatch",
    "SyntheticSet",
    "SyntheticStore",
    "TrainingBudget",
    "budget_order",
    "derive_seed",
    "make_generator",
    "num_synthetic",
    "plan_generation",
    "rank_slice",
    "resolve_budget",
]
