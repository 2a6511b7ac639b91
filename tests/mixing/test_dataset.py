import pytest
import torch

from sclc_lightning.mixing.dataset import GenerationSampler, MixedDataset
from sclc_lightning.mixing.policies import plan_generation


def test_mixed_dataset_concatenates_parts() -> None:
    real = [torch.tensor([float(i)]) for i in range(4)]
    synth = {1: [torch.tensor([100.0 + i]) for i in range(3)], 2: [torch.tensor([200.0 + i]) for i in range(3)]}
    plan = plan_generation("accumulate", 2, 4, {1: 3, 2: 3}, 0)
    ds = MixedDataset(real, plan, synth)
    assert len(ds) == 10 and ds.num_real == 4
    assert [float(ds[i]) for i in range(10)] == [0, 1, 2, 3, 100, 101, 102, 200, 201, 202]
    with pytest.raises(IndexError):
        ds[10]


@pytest.mark.parametrize("world", [1, 2, 3])
def test_sampler_splits_without_duplicates(world: int) -> None:
    order = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    shares = [list(GenerationSampler(order, world, r)) for r in range(world)]
    assert sum(len(s) for s in shares) == 60
    assert sorted(i for s in shares for i in s) == list(range(60))
    with pytest.raises(ValueError, match="does not split evenly"):
        GenerationSampler(order[:7], 2, 0)
