"""Per-source weights: the shares a policy gives, their checks, the item weights they become, the
draw that follows them as sampling probabilities, and every built-in model honouring item weights
(the exact fits as weighted estimators, the gradient-trained models as weighted losses)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from sclc_lightning.mixing import AccumulatePolicy, AugmentPolicy, FreshPolicy, ReplacePolicy, Weighted
from sclc_lightning.mixing.policies import GenerationPlan
from sclc_lightning.mixing.weighting import (
    WeightedCollate,
    check_shares,
    item_weights,
    reads_item_weights,
    split_weights,
    weighted_mean,
    weighted_order,
)

# ------------------------------------------------------------------ shares and weights -----


def test_shares_are_checked_and_normalised() -> None:
    assert check_shares({-1: 2.0, 1: 1.0, 2: 1.0}, [-1, 1, 2], {-1: 5, 1: 5, 2: 5}) == {-1: 0.5, 1: 0.25, 2: 0.25}
    numpy = check_shares({-1: np.float32(0.5), 1: np.int64(1)}, [-1, 1], {-1: 5, 1: 5})  # NumPy scalars are numbers
    assert numpy == pytest.approx({-1: 1 / 3, 1: 2 / 3}) and all(type(v) is float for v in numpy.values())
    sizes = {-1: 5, 1: 5}
    for shares, message in [
        ({-1: 1.0}, "must name each source of its set once"),
        ({-1: 1.0, 1: 1.0, 3: 1.0}, "must name each source of its set once"),
        ({-1: math.nan, 1: 1.0}, "share of source -1 must be a finite number >= 0 .*got nan"),
        ({-1: -0.5, 1: 1.0}, "share of source -1 must be a finite number >= 0"),
        (
            {-1: "0.5", 1: 1.0},
            r"share of source -1 must be a finite number >= 0 \(a Python or NumPy number\), got '0.5'",
        ),
        ({-1: torch.tensor(0.5), 1: 1.0}, r"share of source -1 must be a finite number >= 0 .*got tensor\(0.5000\)"),
        ({-1: True, 1: 1.0}, "share of source -1 must be a finite number >= 0 .*got True"),
        ({-1: 0.0, 1: 0.0}, "shares sum to 0"),
        ([0.5, 0.5], "must be a mapping"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_shares(shares, [-1, 1], sizes)
    with pytest.raises(ValueError, match=r"gives source 1 the share 0\.5, but it has no items"):
        check_shares({-1: 0.5, 1: 0.5}, [-1, 1], {-1: 5, 1: 0})


def test_item_weights_average_one_and_carry_each_share() -> None:
    shares, sizes = {-1: 0.618, 1: 0.382}, {-1: 20, 1: 20}
    weights = item_weights(shares, sizes)
    total = sum(weights[s] * sizes[s] for s in sizes)
    assert total == pytest.approx(40)  # they average 1 over the set
    assert weights[-1] * 20 / total == pytest.approx(0.618) and weights[1] * 20 / total == pytest.approx(0.382)
    # shares in proportion to the sizes: every weight 1 (the unweighted set)
    assert item_weights({-1: 0.25, 1: 0.75}, {-1: 10, 1: 30}) == pytest.approx({-1: 1.0, 1: 1.0})


def test_a_weighted_order_gives_each_source_its_share_of_the_draw() -> None:
    generator = torch.Generator().manual_seed(0)
    order = weighted_order([10, 40], [0.7, 0.3], 1000, generator)
    assert order.numel() == 1000 and int((order < 10).sum()) == 700  # 70 passes over 10 real items
    real = torch.bincount(order[order < 10], minlength=10)
    assert real.min() == real.max() == 70  # spread evenly, as budget_order spreads them
    synthetic = torch.bincount(order[order >= 10] - 10, minlength=30)
    assert synthetic.min() == synthetic.max() == 10
    assert not torch.equal(order[:700], order[:700].sort().values)  # shuffled
    odd = weighted_order([3, 6], [0.5, 0.5], 7, torch.Generator().manual_seed(1))
    assert sorted([int((odd < 3).sum()), int((odd >= 3).sum())]) == [3, 4]  # largest remainder
    assert int((weighted_order([3, 6], [1.0, 0.0], 6, generator) >= 3).sum()) == 0  # share 0: never drawn


def test_weighted_batches_split_collate_and_average() -> None:
    collate = WeightedCollate(torch.utils.data.default_collate)
    items = [Weighted({"x": torch.ones(2), "label": 1}, 0.5), Weighted({"x": torch.zeros(2), "label": 2}, 1.5)]
    batch = collate(items)
    data, weights = split_weights(batch)
    assert data["x"].shape == (2, 2) and data["label"].tolist() == [1, 2] and weights.tolist() == [0.5, 1.5]
    plain = collate([torch.ones(2), torch.zeros(2)])  # unweighted items pass through
    assert split_weights(plain)[1] is None and plain.shape == (2, 2)
    values = torch.tensor([[1.0, 3.0], [5.0, 7.0]])
    assert float(weighted_mean(values, None)) == 4.0
    assert float(weighted_mean(values, torch.tensor([0.5, 1.5]))) == pytest.approx((0.5 * 2 + 1.5 * 6) / 2)


def test_reads_item_weights_must_be_a_bool() -> None:
    class Reads:
        reads_item_weights = True

    class Says:
        reads_item_weights = "yes"

    assert reads_item_weights(Reads()) is True and reads_item_weights(object()) is False
    with pytest.raises(TypeError, match=r"Says\.reads_item_weights must be True or False"):
        reads_item_weights(Says())


# ------------------------------------------------------------------ policies ---------------


def test_real_weight_gives_the_real_data_its_share_under_every_builtin_policy() -> None:
    counts = {1: 6, 2: 6}
    plans = {
        "augment": AugmentPolicy(real_weight=0.7).plan(2, 10, counts, 0),
        "accumulate": AccumulatePolicy(real_weight=0.7).plan(2, 10, counts, 0),
        "replace": ReplacePolicy(keep_real=0.5, real_weight=0.7).plan(2, 10, counts, 0),
        "fresh": FreshPolicy(4, real_weight=0.7).plan(2, 10, counts, 0),
    }
    assert plans["accumulate"].shares == pytest.approx({-1: 0.7, 1: 0.15, 2: 0.15})
    for name in ("augment", "replace", "fresh"):
        assert plans[name].shares == pytest.approx({-1: 0.7, 2: 0.3}), name
    assert AugmentPolicy(real_weight=0.7).plan(0, 10, {}, 0).shares is None  # generation 0: real only
    assert AugmentPolicy().plan(2, 10, counts, 0).shares is None  # no weight: every item counts the same
    with pytest.raises(ValueError, match="set `keep_real` > 0 too"):
        ReplacePolicy(real_weight=0.5)
    kept_none = ReplacePolicy(keep_real=0.01, real_weight=0.5)  # 0.01 of 20 items rounds to none
    with pytest.raises(
        ValueError, match=r"`keep_real` 0\.01 of 20 real items keeps none; raise `keep_real` to at least 0\.05"
    ):
        kept_none.check_real_size(20)
    kept_none.check_real_size(100)  # one item kept: fine


def test_disjoint_fresh_shows_every_real_item_once_and_needs_the_pool_for_it() -> None:
    policy = FreshPolicy(5, disjoint=True)
    policy.check_loop(1.0, generations=3)
    policy.check_real_size(20)
    seen = torch.cat([policy.plan(g, 20, {g: 5} if g else {}, seed=4).real_indices for g in range(4)])
    assert sorted(seen.tolist()) == list(range(20))  # 4 generations x 5: the whole pool, once
    again = torch.cat([policy.plan(g, 20, {}, seed=4).real_indices for g in range(4)])
    assert torch.equal(seen, again)  # the same permutation: a resumed run draws the same
    other = torch.cat([policy.plan(g, 20, {}, seed=5).real_indices for g in range(4)])
    assert not torch.equal(seen, other)  # it follows the run's seed
    short = FreshPolicy(5, disjoint=True)
    short.check_loop(1.0, generations=4)
    with pytest.raises(ValueError, match=r"generations 0..4 need 5 x 5 = 25 real items, and the pool has 20"):
        short.check_real_size(20)
    with pytest.raises(ValueError, match=r"generation 4 needs real items \[20, 25\) of a pool of 20"):
        short.plan(4, 20, {}, seed=0)


def test_a_plan_weighted_without_synthetic_items_stays_unweighted() -> None:
    plan = GenerationPlan(1, True, None, ())
    assert plan.weighted(0.5, 10, {}) is plan


# ------------------------------------------------------------------ the exact fits ---------


def _weighted_batch(points: torch.Tensor, weights: torch.Tensor) -> Weighted:
    return Weighted(points, weights)


def test_the_gaussian_fit_is_the_weighted_estimate() -> None:
    from sclc_lightning.models import GaussianModel

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(30, 3)))
    w = torch.from_numpy(rng.uniform(0.2, 3.0, size=30))
    for estimator in ("unbiased", "mle"):
        model = GaussianModel(dim=3, estimator=estimator)
        halves = [
            model.batch_statistics(_weighted_batch(x[:17], w[:17])),
            model.batch_statistics(Weighted(x[17:], w[17:])),
        ]
        model.fit([a + b for a, b in zip(*halves)])
        mean = np.average(x.numpy(), axis=0, weights=w.numpy())
        cov = np.cov(x.numpy().T, aweights=w.numpy(), bias=estimator == "mle")  # reliability weights
        np.testing.assert_allclose(model.mean.double().numpy(), mean, rtol=1e-5)
        np.testing.assert_allclose(model.cov.double().numpy(), cov, rtol=1e-4, atol=1e-6)
        ones = GaussianModel(dim=3, estimator=estimator)
        ones.fit(ones.batch_statistics(Weighted(x, torch.ones(30))))
        plain = GaussianModel(dim=3, estimator=estimator)
        plain.fit(plain.batch_statistics(x))
        torch.testing.assert_close(ones.cov, plain.cov)  # weights 1: the unweighted fit
    known = GaussianModel(dim=3, target_std=2.0, estimator="known")
    known.fit(known.batch_statistics(Weighted(x, w)))
    torch.testing.assert_close(known.cov, 4.0 * torch.eye(3))  # the variance known: the mean only
    np.testing.assert_allclose(known.mean.double().numpy(), np.average(x.numpy(), axis=0, weights=w.numpy()), rtol=1e-5)


def test_the_laplace_fit_is_the_weighted_median_and_deviation() -> None:
    from sclc_lightning.models import LaplaceModel
    from sclc_lightning.models.laplace import weighted_median

    x = torch.tensor([[1.0], [2.0], [3.0], [10.0]], dtype=torch.float64)
    model = LaplaceModel(dim=1)
    model.fit(model.batch_statistics(Weighted(x, torch.tensor([1.0, 1.0, 1.0, 4.0]))))
    # counted 1, 1, 1, 4 times: the sorted list 1 2 3 10 10 10 10 has median 10, but the half
    # (3.5 of 7) falls inside the 10s: 10, and the deviation (9 + 8 + 7 + 0) / 7
    assert float(model.location) == 10.0 and float(model.scale) == pytest.approx(24 / 7)
    # a weight 0 never decides: the half (2 of 4) reached at 2, the next item of weight > 0 is 10
    assert weighted_median(x, torch.tensor([1.0, 1.0, 0.0, 2.0], dtype=torch.float64)).tolist() == [6.0]
    assert weighted_median(x, torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)).tolist() == [5.5]
    even = LaplaceModel(dim=1)
    even.fit(even.batch_statistics(Weighted(x, torch.tensor([1.0, 1.0, 1.0, 3.0]))))
    assert float(even.location) == 6.5  # the half (3 of 6) between 3 and 10: the middle, as quantile(0.5)
    rng = np.random.default_rng(1)
    points = torch.from_numpy(rng.laplace(size=(41, 2)))
    ones, plain = LaplaceModel(dim=2), LaplaceModel(dim=2)
    ones.fit(ones.batch_statistics(Weighted(points, torch.ones(41))))
    plain.fit(plain.batch_statistics(points))
    torch.testing.assert_close(ones.location, plain.location)
    torch.testing.assert_close(ones.scale, plain.scale)
    moments = LaplaceModel(dim=2, estimator="moments")
    w = torch.from_numpy(rng.uniform(0.5, 2.0, size=41))
    moments.fit(moments.batch_statistics(Weighted(points, w)))
    variance = np.cov(points.numpy().T, aweights=w.numpy()).diagonal()
    np.testing.assert_allclose(moments.scale.double().numpy(), np.sqrt(variance / 2), rtol=1e-5)


def test_the_regression_fit_is_weighted_least_squares() -> None:
    from sclc_lightning.models import LinearRegressionModel

    rng = np.random.default_rng(2)
    x, y, w = rng.normal(size=(40, 3)), rng.normal(size=40), rng.uniform(0.1, 3.0, size=40)
    model = LinearRegressionModel(dim=3)
    model.fit(model.batch_statistics(Weighted((torch.from_numpy(x), torch.from_numpy(y)), torch.from_numpy(w))))
    root = np.sqrt(w)
    expected = np.linalg.lstsq(x * root[:, None], y * root, rcond=None)[0]
    np.testing.assert_allclose(model.weights.numpy(), expected, rtol=1e-5)
    plain = LinearRegressionModel(dim=3)
    plain.fit(plain.batch_statistics((torch.from_numpy(x), torch.from_numpy(y))))
    assert not np.allclose(plain.weights.numpy(), expected)  # the weights changed the fit


def test_the_mixture_fit_counts_a_point_of_weight_two_as_two_points() -> None:
    from sclc_lightning.models.gaussian_mixture import weighted_em

    rng = np.random.default_rng(3)
    x = torch.from_numpy(np.concatenate([rng.normal(-2, 0.5, (20, 2)), rng.normal(2, 0.5, (20, 2))]))
    start = (torch.tensor([0.5, 0.5]), torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), torch.eye(2).repeat(2, 1, 1))
    twice = torch.ones(40, dtype=torch.float64)
    twice[:5] = 2.0  # the first five points counted twice ...
    weighted = weighted_em(x, twice, *start, tol=0.0, max_iter=30)
    repeated = weighted_em(torch.cat([x, x[:5]]), torch.ones(45), *start, tol=0.0, max_iter=30)
    for a, b in zip(weighted, repeated):  # ... is the same fit as those points twice in the data
        torch.testing.assert_close(a, b)
    plain = weighted_em(x, torch.ones(40), *start, tol=0.0, max_iter=30)
    assert not torch.allclose(plain[1], weighted[1])


# ------------------------------------------------------------------ the gradient-trained ---


def _gradient_models() -> dict[str, tuple[Callable[[], Any], Any]]:
    from sclc_lightning.datasets.molecules import embed_conformer
    from sclc_lightning.models import (
        CausalLM,
        ConformerDiffusion,
        ImageDDPM,
        ImageEDM,
        ImageVAE,
        MotionDiffusion,
        PointDDPM,
        PointFlowMatching,
    )

    def conformers() -> dict[str, torch.Tensor]:
        molecules = [embed_conformer(s, seed=0) for s in ("CCO", "CC(=O)N", "CCN", "OCO")]
        pos = torch.zeros(4, 12, 3)
        for k, m in enumerate(molecules):
            pos[k, : m.num_atoms] = m.conformers[0]
        return {"pos": pos, "graph": torch.stack([m.graph(12) for m in molecules])}

    lm = {"model_type": "opt", "vocab_size": 19, "hidden_size": 16, "word_embed_proj_dim": 16, "ffn_dim": 32}
    lm.update(num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=64, pad_token_id=0)
    images = torch.rand(4, 1, 8, 8) * 2 - 1
    unet = {"image_size": 8, "channels": 1, "block_out_channels": [32, 64], "layers_per_block": 1, "attention": False}
    return {
        "ddpm_points": (lambda: PointDDPM(dim=2, hidden=16, layers=2, timesteps=20), torch.randn(4, 2)),
        "cfm_points": (lambda: PointFlowMatching(dim=2, hidden=16, layers=2), torch.randn(4, 2)),
        "vae": (lambda: ImageVAE(image_size=4, latent_dim=2, hidden=8), torch.rand(4, 1, 4, 4) * 2 - 1),
        "image_ddpm": (lambda: ImageDDPM(timesteps=20, **unet), images),
        "image_edm": (lambda: ImageEDM(**unet), images),
        "motion": (
            lambda: MotionDiffusion(frames=4, width=16, layers=1, heads=2, timesteps=10),
            (torch.randn(4, 4, 9), torch.tensor([0, 1, 2, 3])),
        ),
        "causal_lm": (
            lambda: CausalLM(config=lm),
            {"prompt": torch.randint(1, 19, (4, 5)), "continuation": torch.randint(1, 19, (4, 3))},
        ),
        "conformer": (lambda: ConformerDiffusion(width=8, layers=1), conformers()),
    }


GRADIENT_MODELS = ["ddpm_points", "cfm_points", "vae", "image_ddpm", "image_edm", "motion", "causal_lm", "conformer"]


@pytest.mark.parametrize("name", GRADIENT_MODELS)
def test_a_gradient_trained_model_weighs_each_items_loss(name: str) -> None:
    """The loss is linear in the weights (the same draws of noise and time each call): weights 1
    give the unweighted loss, the sum of two weightings the sum of their losses, and moving the
    weight from one item to another changes the loss."""
    build, batch = _gradient_models()[name]
    torch.manual_seed(0)
    model = build()
    assert model.reads_item_weights is True

    def loss(weights: torch.Tensor | None) -> float:
        torch.manual_seed(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # self.log outside a fit
            given = batch if weights is None else Weighted(batch, weights)
            return float(model.training_step(given, 0))

    first, last = torch.tensor([4.0, 0, 0, 0]), torch.tensor([0, 0, 0, 4.0])
    assert loss(torch.ones(4)) == pytest.approx(loss(None), rel=1e-5)
    assert loss(first + last) == pytest.approx(loss(first) + loss(last), rel=1e-4)
    assert loss(torch.zeros(4)) == 0.0
    assert loss(first) != pytest.approx(loss(last), rel=1e-3)


def test_a_subclass_declared_before_real_weight_still_records_it() -> None:
    """A user's subclass of a built-in mode, written when `max_synthetic` was its only setting,
    keeps working, and a `real_weight` it is given decides the plans all the same."""

    class Capped(AccumulatePolicy):
        deciding = ("max_synthetic",)

    assert Capped(max_synthetic=5).settings() == {"max_synthetic": 5}
    assert Capped(max_synthetic=5, real_weight=0.7).settings() == {"max_synthetic": 5, "real_weight": 0.7}
