import pytest
import torch

from sclc_lightning.mixing.budget import budget_order, num_synthetic, rank_slice, resolve_budget
from sclc_lightning.seeding import derive_seed


@pytest.mark.parametrize(
    ("lam", "n", "expected"),
    [(0.5, 50, 25), (0.29, 100, 29), (0.7, 10, 7), (1.5, 31, 46), (0.0, 9, 0), (0.001, 999, 0)],
)
def test_num_synthetic_is_floor_of_lambda_n(lam: float, n: int, expected: int) -> None:
    assert num_synthetic(lam, n) == expected


def test_num_synthetic_refuses_negative() -> None:
    with pytest.raises(ValueError, match="`synthetic_fraction` must be a finite number >= 0, got -1"):
        num_synthetic(-1, 5)


@pytest.mark.parametrize(("total", "world"), [(0, 2), (5, 2), (7, 3), (25, 4), (3, 8)])
def test_rank_slices_cover_total_once(total: int, world: int) -> None:
    covered = [i for r in range(world) for i in range(total)[rank_slice(total, world, r)]]
    assert covered == list(range(total))
    sizes = [len(range(total)[rank_slice(total, world, r)]) for r in range(world)]
    assert max(sizes) - min(sizes) <= 1


def test_derived_seeds_depend_only_on_their_keys() -> None:
    assert derive_seed(0, "sample", 3, 1) == derive_seed(0, "sample", 3, 1)
    seeds = {derive_seed(s, p, g, r) for s in (0, 1) for p in ("sample", "train") for g in (0, 1) for r in (0, 1)}
    assert len(seeds) == 16 and all(0 <= s < 2**63 for s in seeds)
    with pytest.raises(ValueError, match="`purpose` must be one of"):
        derive_seed(0, "other", 0)


def test_resolve_budget_whole_batches_per_rank() -> None:
    b = resolve_budget(1000, 300, 32, 2)
    assert (b.total, b.per_rank, b.batches_per_rank, b.exact, b.with_replacement) == (960, 480, 15, False, True)
    b = resolve_budget(10, 300, 32, 2)  # less than one step: one batch per rank
    assert (b.total, b.batches_per_rank) == (64, 1)
    b = resolve_budget(128, 300, 32, 2)
    assert b.exact and b.total == 128 and not b.with_replacement


def test_resolve_budget_one_pass() -> None:
    b = resolve_budget(None, 75, 10, 1)
    assert (b.total, b.per_rank, b.batches_per_rank) == (75, 75, 8)
    b = resolve_budget(None, 75, 10, 2)
    assert (b.total, b.per_rank, b.batches_per_rank) == (74, 37, 4)
    b = resolve_budget(None, 75, 10, 1, drop_last=True)
    assert (b.total, b.batches_per_rank) == (70, 7)
    with pytest.raises(ValueError, match="mixed training set is empty"):
        resolve_budget(None, 0, 10, 1)


def test_budget_order_balances_items() -> None:
    order = budget_order(10, 35, torch.Generator().manual_seed(0))
    counts = torch.bincount(order, minlength=10)
    assert order.numel() == 35 and set(counts.tolist()) == {3, 4} and int((counts == 4).sum()) == 5
    again = budget_order(10, 35, torch.Generator().manual_seed(0))
    assert torch.equal(order, again)
