"""Linear regression refitted on its own targets (Gerstgrasser et al. 2024): the model, the theory's
closed forms, and the recipe through ``sclc fit`` against them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import metrics_rows

from sclc_lightning.cli import main
from sclc_lightning.datasets.toy import LinearRegressionDataModule
from sclc_lightning.models import LinearRegressionModel
from sclc_lightning.report import find_runs
from sclc_lightning.report.theory import _theory_curve
from sclc_lightning.theory import linear_regression_error, linear_regression_error_limit

RECIPES = Path(__file__).parents[2] / "recipes"


def test_the_fit_is_least_squares_and_samples_follow_the_fitted_line() -> None:
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 4, generator=generator), torch.randn(50, 1, generator=generator)
    model = LinearRegressionModel(dim=4, noise_std=0.0)
    halves = [model.batch_statistics((x[:20], y[:20])), model.batch_statistics((x[20:], y[20:]))]
    metrics = model.fit([a + b for a, b in zip(*halves)])
    expected = torch.linalg.lstsq(x.double(), y.double()).solution[:, 0]
    assert torch.allclose(model.weights, expected, atol=1e-10)
    assert metrics == {"weight_norm": pytest.approx(float(expected.norm()))}  # no DataModule: no w*
    assert torch.allclose(model.sample(50, conditions=x)[:, 0].double(), x.double() @ expected, atol=1e-5)
    with pytest.raises(ValueError, match="needs the inputs x as `conditions`"):
        model.sample(3)


@pytest.mark.parametrize("mode", ["replace", "accumulate"])
def test_the_closed_forms_match_a_direct_simulation(mode: str) -> None:
    """The process simulated without the loop, over 4,000 designs: the theory's expectation."""
    n, dim, sigma, reps, generations = 24, 4, 0.5, 4000, 6
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(reps, n, dim, generator=generator, dtype=torch.float64)
    pinv = torch.linalg.pinv(x)
    w_true = torch.zeros(reps, dim, dtype=torch.float64)  # the error does not depend on w*
    fits = []
    y = torch.einsum("rnd,rd->rn", x, w_true) + sigma * torch.randn(reps, n, generator=generator, dtype=torch.float64)
    for g in range(generations + 1):
        fits.append(torch.einsum("rdn,rn->rd", pinv, y))
        w = fits[-1] if mode == "replace" else torch.stack(fits).mean(0)  # stacked X: the fits' mean
        fits[-1] = w if mode == "replace" else fits[-1]
        measured = float((w - w_true).pow(2).sum(1).mean())
        expected = linear_regression_error(g, n, dim, sigma, mode)
        assert math.isclose(measured, expected, rel_tol=0.06), (g, measured, expected)
        y = torch.einsum("rnd,rd->rn", x, w) + sigma * torch.randn(reps, n, generator=generator, dtype=torch.float64)
    assert linear_regression_error(10**4, n, dim, sigma, "accumulate") < linear_regression_error_limit(n, dim, sigma)
    with pytest.raises(ValueError, match="`n` must be an integer >= dim \\+ 2"):
        linear_regression_error(1, n=5, dim=4, noise_std=1.0, mode="replace")
    with pytest.raises(ValueError, match="`mode` must be 'replace' or 'accumulate'"):
        linear_regression_error(1, n=24, dim=4, noise_std=1.0, mode="augment")


def test_the_data_follow_the_seed_of_the_run() -> None:
    import lightning.pytorch as pl

    modules = []
    for seed in (3, 3, 4):  # the run's seed: seed_everything's, read when the data are set up
        pl.seed_everything(seed, verbose=False)
        module = LinearRegressionDataModule(n=16, dim=2)
        module.setup("fit")
        modules.append(module)
    a, b, c = modules
    assert torch.equal(a.true_weights(), b.true_weights()) and not torch.equal(a.true_weights(), c.true_weights())
    assert a.train_pairs is not None and b.train_pairs is not None
    assert torch.equal(a.train_pairs.x, b.train_pairs.x)
    x, y = a.train_pairs[0]
    assert x.shape == (2,) and y.shape == (1,)


def test_replace_grows_linearly_and_accumulate_stays_bounded_as_the_theory_says(tmp_path: Path) -> None:
    seeds, last = range(6), 20
    final: dict[str, list[float]] = {"replace": [], "accumulate": []}
    for mode in final:
        for seed in seeds:
            run_dir = tmp_path / f"{mode}{seed}"
            args = ["fit", "--config", str(RECIPES / "linear_regression.yaml")]
            args += ["--config", str(RECIPES / "small" / "linear_regression.yaml"), "--run_dir", str(run_dir)]
            assert main([*args, "--loop.mode", mode, "--seed_everything", str(seed), "--loop.seed", str(seed)]) == 0
            rows = metrics_rows(run_dir)
            assert [int(r["generation"]) for r in rows] == list(range(last + 1))
            assert rows[1]["num_real"] == (64 if mode == "accumulate" else 0)
            assert rows[last]["num_synthetic"] == (64 * last if mode == "accumulate" else 64)
            final[mode].append(rows[last]["test_error"])
    replace, accumulate = (sum(v) / len(v) for v in (final["replace"], final["accumulate"]))
    # theory at generation 20: replace 8/55 * 21 = 3.05; accumulate 0.232 < limit 0.239
    assert replace > 0.5 * linear_regression_error(last, 64, 8, 1.0, "replace")
    assert accumulate < 1.5 * linear_regression_error_limit(64, 8, 1.0)
    assert replace > 5 * accumulate

    runs = [r for r in find_runs([tmp_path]) if r.loop["mode"] == "replace"]
    label, generations, values = _theory_curve("test_error", runs) or ("", [], [])
    assert "(t+1)" in label and generations == list(range(last + 1))
    assert values == [linear_regression_error(g, 64, 8, 1.0, "replace") for g in generations]
