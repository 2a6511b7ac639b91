"""Weighted mixing in a fit: a module that reads item weights gets each item's weight as a field
(``Weighted`` batches, the user's collate kept), one that does not gets them as sampling
probabilities, and a built-in exact fit becomes the weighted estimator of the set the loop
planned (He, Xu & Cheng 2025's w and 1 - w)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.items.codec import ItemCodec
from sclc_lightning.mixing import FreshPolicy, GenerationPlan, MixingPolicy, Weighted, split_weights
from sclc_lightning.store.synthetic import SyntheticStore
from tests.helpers import TensorItems, fit

SYNTHETIC_OFFSET = 100.0


class Recorder(pl.LightningModule):
    """Records, per generation, each batch's points and weights; synthetic points are 100 + noise,
    real ones lie in [0, 1), so every item's source can be told."""

    reads_item_weights = False

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.batches: list[tuple[int, Tensor, Tensor | None, bool]] = []

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        data, weights = split_weights(batch)
        self.batches.append((self.current_epoch, data.detach().clone(), weights, isinstance(batch, Weighted)))
        return (self.p * data.mean()).sum() * 0 + self.p.pow(2).sum()

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None, conditions: Any = None) -> Tensor:
        return SYNTHETIC_OFFSET + torch.randn(num_samples, 2, generator=generator)


class WeightReader(Recorder):
    reads_item_weights = True


def _real(n: int) -> Tensor:
    return torch.rand(n, 2, generator=torch.Generator().manual_seed(0))


def _loop(tmp_path: Path, budget: int | None, **mode: Any) -> SelfConsumingLoop:
    return SelfConsumingLoop(
        1.5,  # k = 1.5 synthetic points per real one
        generations=2,
        images_per_generation=budget,
        mode="fresh",
        mode_kwargs={"real_per_generation": 20, **mode},
        seed=3,
        output_dir=tmp_path / "synthetic",
        dry_run=False,
    )


@pytest.mark.parametrize("workers", [0, 1])
def test_a_module_that_reads_weights_gets_them_as_a_field_of_every_item(tmp_path: Path, workers: int) -> None:
    model = WeightReader()
    data = DataLoader(TensorItems(_real(60)), batch_size=10, num_workers=workers, persistent_workers=bool(workers))
    fit(tmp_path, model, data, _loop(tmp_path, None, disjoint=True, real_weight=0.618))
    by_generation: dict[int, list[tuple[Tensor, Tensor | None, bool]]] = {}
    for generation, points, weights, weighted in model.batches:
        by_generation.setdefault(generation, []).append((points, weights, weighted))
    assert not any(weighted for _, _, weighted in by_generation[0])  # generation 0: real items as they are
    for generation in (1, 2):
        batches = by_generation[generation]
        assert all(weighted for _, _, weighted in batches)
        points = torch.cat([p for p, _, _ in batches])
        weights = torch.cat([w for _, w, _ in batches if w is not None])
        synthetic = points[:, 0] > SYNTHETIC_OFFSET / 2
        assert int((~synthetic).sum()) == 20 and int(synthetic.sum()) == 30  # one pass: n and kn
        # w N / n for a real item, (1 - w) N / (k n) for a synthetic one: the real data carry w
        assert torch.allclose(weights[~synthetic], torch.full((20,), 0.618 * 50 / 20))
        assert torch.allclose(weights[synthetic], torch.full((30,), 0.382 * 50 / 30))
        assert float(weights[~synthetic].sum() / weights.sum()) == pytest.approx(0.618)


def test_a_module_that_does_not_read_weights_gets_them_as_sampling_probabilities(tmp_path: Path) -> None:
    model = Recorder()
    fit(tmp_path, model, DataLoader(TensorItems(_real(60)), batch_size=10), _loop(tmp_path, 200, real_weight=0.8))
    for generation in (1, 2):
        points = torch.cat([p for g, p, w, weighted in model.batches if g == generation])
        assert not any(weighted for g, _, _, weighted in model.batches)
        synthetic = points[:, 0] > SYNTHETIC_OFFSET / 2
        assert len(points) == 200 and int((~synthetic).sum()) == 160  # 0.8 of the draw, exactly
        # each real item of the generation drawn 8 times (160 draws over its 20 items)
        counts = torch.unique(points[~synthetic], dim=0, return_counts=True)[1]
        assert counts.numel() == 20 and bool((counts == 8).all())
    unweighted = Recorder()
    fit(
        tmp_path / "plain",
        unweighted,
        DataLoader(TensorItems(_real(60)), batch_size=10),
        _loop(tmp_path / "plain", 200),
    )
    points = torch.cat([p for g, p, _, _ in unweighted.batches if g == 1])
    assert int((points[:, 0] < SYNTHETIC_OFFSET / 2).sum()) == 80  # unweighted: 20 of 50 items, 0.4 of the draw


def test_the_builtin_gaussian_fit_is_the_weighted_estimate_of_the_planned_set(tmp_path: Path) -> None:
    from sclc_lightning.models import GaussianModel

    real = torch.randn(60, 2, generator=torch.Generator().manual_seed(1))
    model = GaussianModel(dim=2)
    loop = _loop(tmp_path, None, disjoint=True, real_weight=0.7)
    fit(tmp_path, model, DataLoader(TensorItems(real), batch_size=10), loop)
    policy = FreshPolicy(20, disjoint=True, real_weight=0.7)
    real_items = real[policy.plan(2, 60, {2: 30}, seed=3).real_indices].double()
    store = SyntheticStore(tmp_path / "synthetic")
    stored = store.open_generation(store.records()[2], ItemCodec.infer(torch.zeros(2)), 60)
    synthetic = torch.stack([stored[i] for i in range(len(stored))]).double()
    assert len(synthetic) == 30
    mean = 0.7 * real_items.mean(0) + 0.3 * synthetic.mean(0)  # the paper's estimator
    torch.testing.assert_close(model.mean.double(), mean, rtol=1e-5, atol=1e-6)
    points = torch.cat([real_items, synthetic]).numpy()
    weights = np.concatenate([np.full(20, 0.7 / 20), np.full(30, 0.3 / 30)])
    np.testing.assert_allclose(model.cov.double().numpy(), np.cov(points.T, aweights=weights), rtol=1e-4)


def test_the_builtin_mixture_fit_follows_the_weights(tmp_path: Path) -> None:
    from sclc_lightning.models import GaussianMixtureModel

    real = torch.cat([torch.randn(30, 1) * 0.3 - 2, torch.randn(30, 1) * 0.3 + 2])
    fitted = {}
    for weight in (None, 0.9):
        model = GaussianMixtureModel(num_components=2, dim=1)
        mode = {} if weight is None else {"real_weight": weight}
        fit(
            tmp_path / str(weight),
            model,
            DataLoader(TensorItems(real), batch_size=10),
            _loop(tmp_path / str(weight), None, **mode),
        )
        fitted[weight] = model.means.detach().clone().sort(0).values
    assert not torch.allclose(fitted[None], fitted[0.9])


def test_the_dry_run_and_the_fit_refuse_a_declaration_that_is_not_a_bool(tmp_path: Path) -> None:
    class Says(Recorder):
        reads_item_weights = "yes"  # type: ignore[assignment]

    with pytest.raises(TypeError, match=r"Says\.reads_item_weights must be True or False"):
        fit(tmp_path, Says(), DataLoader(TensorItems(_real(60)), batch_size=10), _loop(tmp_path, None, real_weight=0.5))
    assert not (tmp_path / "synthetic").exists()  # refused before anything was written


class _BadShares(MixingPolicy):
    """Augment, with shares that leave out the synthetic set from generation 2 on."""

    deciding = ()

    def plan(self, generation: int, real_size: int, synthetic_counts: Any, seed: int) -> GenerationPlan:
        if generation == 0:
            return GenerationPlan(0, True)
        sets = MixingPolicy.latest(generation, synthetic_counts)
        shares = {-1: 0.5, generation: 0.5} if generation < 2 else {-1: 1.0}
        return GenerationPlan(generation, True, None, sets, shares=shares)


def test_a_policys_bad_shares_are_refused_before_generation_0_naming_it(tmp_path: Path) -> None:
    model = WeightReader()
    loop = SelfConsumingLoop(1.0, 3, images_per_generation=None, mode=_BadShares(), output_dir=tmp_path / "s")
    with pytest.raises(ValueError, match=r"Mixing policy '_BadShares', generation 2: A plan's `shares` must name each"):
        fit(tmp_path, model, DataLoader(TensorItems(_real(20)), batch_size=10), loop)
    assert model.batches == []  # nothing trained
    assert not list((tmp_path / "s").glob("gen_*"))  # nothing sampled


def test_passes_per_generation_grows_the_budget_with_the_accumulated_set(tmp_path: Path) -> None:
    """Gerstgrasser et al.'s accumulate: every generation sees all its data as often."""
    import json

    model = Recorder()
    loop = SelfConsumingLoop(
        1.0, 3, passes_per_generation=2, mode="accumulate", seed=0, output_dir=tmp_path / "s", dry_run=False
    )
    fit(tmp_path, model, DataLoader(TensorItems(_real(20)), batch_size=10), loop)
    seen = {g: sum(len(p) for gen, p, _, _ in model.batches if gen == g) for g in range(4)}
    assert seen == {0: 40, 1: 80, 2: 120, 3: 160}  # 2 passes over 20, 40, 60, 80 items
    for g in (1, 2, 3):  # every item of the set twice: each real point 2 times per generation
        points = torch.cat([p for gen, p, _, _ in model.batches if gen == g])
        real = points[points[:, 0] < SYNTHETIC_OFFSET / 2]
        assert bool((torch.unique(real, dim=0, return_counts=True)[1] == 2).all())
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["config"]["passes_per_generation"] == 2.0
