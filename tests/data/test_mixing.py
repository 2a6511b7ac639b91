import pytest
import torch

from sclc_lightning.data.mixing import GenerationSampler, MixedDataset, plan_generation


def test_plans_per_mode() -> None:
    counts = {1: 5, 2: 5, 3: 5}
    assert plan_generation("augment", 0, 10, {}, 0).num_real(10) == 10
    p = plan_generation("augment", 3, 10, counts, 0)
    assert p.num_real(10) == 10 and [g for g, _ in p.synthetic] == [3]
    p = plan_generation("accumulate", 3, 10, counts, 0)
    assert p.num_synthetic(counts) == 15 and [g for g, _ in p.synthetic] == [1, 2, 3]
    p = plan_generation("replace", 3, 10, counts, 0)
    assert p.num_real(10) == 0 and p.num_synthetic(counts) == 5
    assert plan_generation("replace", 0, 10, {}, 0).num_real(10) == 10


def test_accumulate_cap_is_a_uniform_subsample() -> None:
    counts = {g: 100 for g in range(1, 11)}
    p = plan_generation("accumulate", 10, 10, counts, seed=1, max_synthetic=300)
    assert p.num_synthetic(counts) == 300
    per_gen = [int(rows.numel()) for _, rows in p.synthetic]
    assert all(15 <= k <= 45 for k in per_gen)  # about 30 from each of the 10 generations
    assert all(bool((rows < 100).all()) and rows.unique().numel() == rows.numel() for _, rows in p.synthetic)


def test_fresh_subsets_are_new_each_generation() -> None:
    a = plan_generation("fresh", 1, 100, {1: 3}, 0, real_per_generation=20).real_indices
    b = plan_generation("fresh", 2, 100, {2: 3}, 0, real_per_generation=20).real_indices
    assert (
        a is not None
        and b is not None
        and a.unique().numel() == 20
        and not torch.equal(a.sort().values, b.sort().values)
    )
    with pytest.raises(ValueError, match=r"`real_per_generation` must be in \[1, 100\]"):
        plan_generation("fresh", 1, 100, {}, 0, real_per_generation=200)


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
