import pytest
import torch

import sclc_lightning.mixing
from sclc_lightning.mixing.policies import (
    GenerationPlan,
    MixingPolicy,
    available_mixing_policies,
    get_mixing_policy_class,
    make_mixing_policy,
    plan_generation,
    register_mixing_policy,
)


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


def test_replace_can_keep_a_new_share_of_the_real_data_each_generation() -> None:
    counts = {1: 50, 2: 50}
    a = plan_generation("replace", 1, 50, counts, 0, keep_real=0.1)
    b = plan_generation("replace", 2, 50, counts, 0, keep_real=0.1)
    assert a.num_real(50) == 5 and a.num_synthetic(counts) == 50 and [g for g, _ in b.synthetic] == [2]
    assert a.real_indices is not None and b.real_indices is not None
    assert a.real_indices.unique().numel() == 5 and not torch.equal(a.real_indices, b.real_indices)
    assert plan_generation("replace", 0, 50, {}, 0, keep_real=0.1).is_all_real
    assert make_mixing_policy("replace", {"keep_real": 0.1}).describe() == {"name": "replace", "keep_real": 0.1}
    assert make_mixing_policy("replace").describe() == {"name": "replace"}  # as runs saved before keep_real
    with pytest.raises(ValueError, match=r"`keep_real` must be a finite number >= 0 and <= 1, got 1.5"):
        make_mixing_policy("replace", {"keep_real": 1.5})


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


def test_builtins_are_registered_exported_and_described() -> None:
    builtin = [
        n for n in available_mixing_policies() if get_mixing_policy_class(n).__module__.startswith("sclc_lightning.")
    ]
    assert builtin == ["accumulate", "augment", "fresh", "replace"]
    for name in ("accumulate", "augment", "fresh", "replace"):
        cls = get_mixing_policy_class(name)
        assert cls.name == name and getattr(sclc_lightning.mixing, cls.__name__) is cls
    assert make_mixing_policy("accumulate", {"max_synthetic": 50}).describe() == {
        "name": "accumulate",
        "max_synthetic": 50,
    }
    assert make_mixing_policy("fresh", {"real_per_generation": 9}).n(100) == 9
    assert make_mixing_policy("augment").n(100) == 100


@pytest.mark.parametrize(
    ("mode", "kwargs", "error", "match"),
    [
        ("mix", None, ValueError, r"`mode` must be one of \['accumulate', 'augment', 'fresh', 'replace'.*got 'mix'"),
        ("augment", {"max_synthetic": 3}, ValueError, r"`mode_kwargs` has 'max_synthetic', which the mixing policy"),
        ("accumulate", {"max_synthetic": -1}, ValueError, r"`max_synthetic` must be None or an integer >= 0, got -1"),
        ("fresh", {}, ValueError, r"`real_per_generation` is required in mode 'fresh', got None"),
        ("fresh", {"real_per_generation": 0}, ValueError, r"`real_per_generation` must be None or an integer >= 1"),
        (3, None, TypeError, r"`mode` must be a MixingPolicy or a registered name, got 3"),
        (None, None, ValueError, r"`mode` must be one of \[.*\] or a MixingPolicy, got None"),
    ],
)
def test_bad_policies_are_refused(mode, kwargs, error, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        make_mixing_policy(mode, kwargs)


def test_instance_with_kwargs_is_refused() -> None:
    with pytest.raises(ValueError, match=r"`mode_kwargs` is only used with a registered mixing policy name"):
        make_mixing_policy(get_mixing_policy_class("augment")(), {"x": 1})


def test_registering_a_name_twice_is_refused() -> None:
    @register_mixing_policy("test_once")
    class Once(MixingPolicy):
        def plan(self, generation, real_size, synthetic_counts, seed):  # type: ignore[no-untyped-def]
            return GenerationPlan(generation, True)

    with pytest.raises(ValueError, match="A mixing policy is already registered as 'test_once'"):
        register_mixing_policy("test_once")(type("Other", (Once,), {}))
    with pytest.raises(TypeError, match="`register_mixing_policy` decorates MixingPolicy subclasses"):
        register_mixing_policy("test_not_a_policy")(int)
