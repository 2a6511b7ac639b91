"""Data machinery of the loop: item structure, budgets, mixing policies, the synthetic store."""

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
from sclc_lightning.data.lock import RunDirectoryLocked, RunLock
from sclc_lightning.data.manifest import Manifest, RunDirectoryError, Shard, StoredGeneration
from sclc_lightning.data.mixing import GenerationSampler, MixedDataset
from sclc_lightning.data.policies import (
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
from sclc_lightning.data.real import RealData
from sclc_lightning.data.store import SyntheticSet, SyntheticStore

__all__ = [
    "AccumulatePolicy",
    "AugmentPolicy",
    "FreshPolicy",
    "GenerationPlan",
    "GenerationSampler",
    "ItemCodec",
    "Manifest",
    "MixedDataset",
    "MixingPolicy",
    "RealData",
    "ReplacePolicy",
    "RunDirectoryError",
    "RunDirectoryLocked",
    "RunLock",
    "Shard",
    "StoredGeneration",
    "SyntheticBatch",
    "SyntheticSet",
    "SyntheticStore",
    "TrainingBudget",
    "available_mixing_policies",
    "budget_order",
    "derive_seed",
    "get_mixing_policy_class",
    "make_generator",
    "make_mixing_policy",
    "num_synthetic",
    "plan_generation",
    "rank_slice",
    "register_mixing_policy",
    "resolve_budget",
]
