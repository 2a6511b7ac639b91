"""The synthetic-data detector (a classifier two-sample test) and the live stability monitor."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import fit, metrics_rows
from torch import Tensor
from torch.utils.data import DataLoader

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.callbacks import DetectorMetrics, GenerationCSV, StabilityMonitor
from sclc_lightning.datasets.toy import GaussianDataModule
from sclc_lightning.metrics import c2st_auc
from sclc_lightning.models import GaussianModel
from sclc_lightning.theory import bertrand_is_stable, bertrand_max_fraction


def test_the_detector_cannot_tell_fresh_real_draws_and_tells_a_collapse() -> None:
    # 1,000 items per class: the AUC of a classifier without signal has a standard error of about
    # 0.013 (Hanley & McNeil), so 0.5 ± 0.05 is almost 4 of them.
    g = torch.Generator().manual_seed(1)
    real, fresh = torch.randn(1000, 2, generator=g), torch.randn(1000, 2, generator=g)
    assert abs(c2st_auc(fresh, real) - 0.5) < 0.05
    assert c2st_auc(0.2 * fresh, real) > 0.9  # a collapsed spread, same mean: the MLP sees it
    assert abs(c2st_auc(0.2 * fresh, real, classifier="logistic") - 0.5) < 0.1  # a linear one does not
    with pytest.raises(ValueError, match="classifier"):
        c2st_auc(fresh, real, classifier="tree")


class Shrunk(GaussianModel):
    """Samples at half its fitted spread without saying so (a hidden sampling bias)."""

    def sample(
        self, num_samples: int, *, generator: Any = None, conditions: Any = None, temperature: float = 1.0
    ) -> Tensor:
        return super().sample(num_samples, generator=generator, temperature=0.5 * temperature)


def _run(tmp_path: Path, model: GaussianModel, callbacks: list[Any], generations: int = 8, **loop: Any) -> list[Any]:
    settings: dict[str, Any] = {"mode": "replace", **loop}
    loop_ = SelfConsumingLoop(1.0, generations, images_per_generation=None, output_dir=tmp_path / "s", **settings)
    data = GaussianDataModule(n=600, dim=2, n_test=1000, batch_size=600, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = fit(tmp_path, model, data, loop_, callbacks=[*callbacks, GenerationCSV()])
    return [trainer, [str(w.message) for w in caught if "StabilityMonitor" in str(w.message)]]


def test_the_monitor_follows_the_exact_gaussian_and_says_when_it_leaves_the_band(tmp_path: Path) -> None:
    trainer, said = _run(
        tmp_path / "ok", GaussianModel(dim=2), [StabilityMonitor()], sample_kwargs={"temperature": 0.9}
    )
    rows = metrics_rows(tmp_path / "ok")
    assert said == [] and all(abs(r["log_sigma_z"]) < 3 for r in rows)
    assert rows[-1]["log_sigma_expected"] == pytest.approx(8 * (-0.1053605 - 0.0008361), abs=1e-3)
    assert "log_sigma_z" in trainer.progress_bar_metrics  # the progress bar's postfix shows it
    _, said = _run(tmp_path / "biased", Shrunk(dim=2), [StabilityMonitor()])
    assert len(said) == 1 and "standard deviations from the exact Gaussian's expectation" in said[0]


def test_the_monitor_checks_bertrands_condition_and_a_drift_metric(tmp_path: Path) -> None:
    assert bertrand_max_fraction(alpha=1.0, epsilon=1.0, lipschitz=1.0) == 0.5
    assert bertrand_is_stable(0.49, 1.0, 1.0, 1.0) and not bertrand_is_stable(0.5, 1.0, 1.0, 1.0)
    monitor = StabilityMonitor(alpha=1.0, epsilon=1.0, lipschitz=1.0, drift_threshold=0.75)
    # the detector asked for the loop's own temperature (by default it measures the model at τ = 1)
    detector = DetectorMetrics(num_samples=500, every=4, classifier="mlp", sample_kwargs={"temperature": 0.5})
    _, said = _run(
        tmp_path, GaussianModel(dim=2), [detector, monitor], generations=8, sample_kwargs={"temperature": 0.5}
    )
    rows = metrics_rows(tmp_path)
    assert all(r["bertrand_margin"] == -0.5 for r in rows[1:])  # λ = 1 against 1/(1 + 1) = 0.5
    # evaluated at generations 0, 4 and 8 on the loop's sampler, at τ = 0.5: already told apart
    # at generation 0 (half the spread), and σ halves every generation after
    aucs = [rows[g]["c2st_auc"] for g in (0, 4, 8)]
    # near 1 an AUC of 500 + 500 points has a standard error of about 0.005: 0.02 is 4 of them
    assert 0.7 < aucs[0] < aucs[1] and aucs[2] >= aucs[1] - 0.02 and aucs[2] > 0.98, aucs
    assert len(said) == 2  # each said once, though true at every generation
    assert any("Bertrand" in s for s in said) and any("c2st_auc" in s for s in said)
    with pytest.raises(ValueError, match="all of `alpha`, `epsilon` and `lipschitz`"):
        StabilityMonitor(alpha=1.0)


class LateFit(GaussianModel):
    """Refits and logs σ in its own ``on_train_epoch_end``, which Lightning runs after every
    callback's: a monitor reading at its own epoch-end hook would see the previous generation."""

    def training_step(self, batch: Any, batch_idx: int) -> None:
        stats = [s.detach() for s in self.batch_statistics(batch)]
        self._stats = stats if self._stats is None else [a + b for a, b in zip(self._stats, stats)]

    def on_train_epoch_end(self) -> None:
        assert self._stats is not None
        self.fit(self._stats)
        self._stats = None
        self.log("sigma_late", self.sigma)


@pytest.mark.parametrize("first", [True, False])
def test_the_monitor_reads_a_generation_after_every_hook_whatever_the_order(tmp_path: Path, first: bool) -> None:
    monitor = StabilityMonitor(drift_metric=None)
    csv = GenerationCSV()
    callbacks = [monitor, csv] if first else [csv, monitor]
    loop = SelfConsumingLoop(1.0, 4, images_per_generation=None, mode="replace", output_dir=tmp_path / "s", seed=0)
    fit(tmp_path, LateFit(dim=2), GaussianDataModule(n=50, n_test=10, batch_size=50, seed=0), loop, callbacks=callbacks)
    rows = metrics_rows(tmp_path)
    assert [int(r["generation"]) for r in rows] == [0, 1, 2, 3, 4]
    for row in rows:  # the ratio of the σ this generation fitted to generation 0's, not the one before
        assert row["log_sigma_ratio"] == pytest.approx(math.log(row["sigma_late"] / rows[0]["sigma_late"]), abs=1e-6)


def test_the_monitor_takes_the_models_variance_estimator(tmp_path: Path) -> None:
    # n = 10, 200 generations: the unbiased expectation is 200 · ½ log(10/9) = 10.5 above the MLE
    # one, about 3 standard deviations (3.5): a monitor assuming the unbiased estimate warns.
    # float64 throughout: σ falls to about e^-22, below float32's precision around the mean.
    from sclc_lightning.theory import expected_log_sigma_ratio, log_sigma_ratio_std

    loop = SelfConsumingLoop(1.0, 200, images_per_generation=None, mode="replace", output_dir=tmp_path / "s", seed=3)
    model = GaussianModel(dim=1, estimator="mle").double()
    real = torch.randn(10, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(
            tmp_path,
            model,
            DataLoader(real, batch_size=10),
            loop,
            callbacks=[StabilityMonitor(drift_metric=None), GenerationCSV()],
        )
    said = [str(w.message) for w in caught if "StabilityMonitor" in str(w.message)]
    last = metrics_rows(tmp_path)[-1]
    assert int(last["generation"]) == 200 and said == [] and abs(last["log_sigma_z"]) < 3
    assert last["log_sigma_expected"] == pytest.approx(expected_log_sigma_ratio(200, 10, estimator="mle"))
    unbiased_z = (last["log_sigma_ratio"] - expected_log_sigma_ratio(200, 10)) / log_sigma_ratio_std(200, 10)
    assert unbiased_z < last["log_sigma_z"] - 2.5  # what the monitor would have said, assuming n - 1


def test_a_gaussian_collapsed_to_its_dtypes_precision_logs_nan_not_stale_values(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(1.0, 200, images_per_generation=None, mode="replace", output_dir=tmp_path / "s", seed=3)
    data = GaussianDataModule(n=10, dim=1, n_test=10, batch_size=10, seed=3)  # float32: σ reaches 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        callbacks = [StabilityMonitor(drift_metric=None), GenerationCSV()]
        fit(tmp_path, GaussianModel(dim=1, estimator="mle"), data, loop, callbacks=callbacks)
    rows = metrics_rows(tmp_path)
    zero = next(r for r in rows if r["sigma"] == 0.0)  # float32 samples: σ below the mean's precision
    assert math.isnan(zero["log_sigma_ratio"]) and math.isnan(rows[-1]["log_sigma_expected"])
    assert sum("logged as NaN" in str(w.message) for w in caught) == 1


def test_the_exact_gaussian_view_is_for_models_that_declare_it_and_runs_without_weight_correction(
    tmp_path: Path,
) -> None:
    from helpers import GaussianModel as GradientGaussian

    class LogsSigma(GradientGaussian):  # gradient-trained: it logs a `sigma`, declares nothing
        def on_train_epoch_end(self) -> None:
            self.log("sigma", float(self.log_std.exp().mean()))

    trainer, said = _run(tmp_path / "g", LogsSigma(), [StabilityMonitor(drift_metric=None)], generations=2)
    assert said == [] and "log_sigma_z" not in trainer.callback_metrics
    neon = {"model_corrector": "neon", "model_corrector_kwargs": {"weight": 1.0, "num_samples": 200}}
    trainer, said = _run(tmp_path / "n", GaussianModel(dim=2), [StabilityMonitor(drift_metric=None)], 2, **neon)
    assert said == [] and "log_sigma_z" not in trainer.callback_metrics


def test_a_watched_metric_that_never_appears_is_said_once_with_the_nearest_name(tmp_path: Path) -> None:
    detector = DetectorMetrics(num_samples=200, every=1, classifier="logistic")
    _, said = _run(tmp_path, GaussianModel(dim=2), [StabilityMonitor(drift_metric="c2st_acu"), detector], 2)
    assert len(said) == 1 and "'c2st_acu' was never logged" in said[0] and "Did you mean 'c2st_auc'?" in said[0]
    _, said = _run(tmp_path / "b", GaussianModel(dim=2), [StabilityMonitor(drift_metric="my_drift")], 1)
    assert len(said) == 1 and "'my_drift' was never logged" in said[0]


def test_the_monitor_before_the_detector_still_reads_its_metric(tmp_path: Path) -> None:
    monitor = StabilityMonitor(drift_threshold=0.6)  # "auto": watches c2st_auc, the detector being there
    detector = DetectorMetrics(num_samples=300, every=1, classifier="mlp", sample_kwargs={"temperature": 0.3})
    _, said = _run(tmp_path, GaussianModel(dim=2), [monitor, detector], 1)
    assert len(said) == 1 and "c2st_auc" in said[0] and "has drifted" in said[0]


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"alpha": 0.0, "epsilon": 1.0, "lipschitz": 1.0}, r"`alpha` must be a finite number > 0, got 0.0"),
        ({"band": float("nan")}, r"`band` must be a finite number > 0, got nan"),
        ({"band": "3"}, r"`band` must be a finite number > 0, got '3' \(text"),
        ({"drift_threshold": -1}, r"`drift_threshold` must be a finite number >= 0 and <= 1, got -1"),
        ({"drift_threshold": None}, r"`drift_threshold` must be a finite number >= 0 and <= 1, got None"),
        ({"drift_metric": ""}, r"`drift_metric` must be a metric's name or None"),
    ],
)
def test_monitor_arguments_are_refused_in_its_constructor(arguments: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        StabilityMonitor(**arguments)


def test_the_detector_samples_the_models_own_distribution_and_says_how_many_items_it_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    # the loop samples at τ = 0.5; the detector, by default, the model itself: a generation-0
    # model fitted on 600 real points cannot be told from held-out ones (AUC ≈ 0.5)
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        _run(
            tmp_path,
            GaussianModel(dim=2),
            [DetectorMetrics(num_samples=5000, every=10, classifier="mlp")],
            generations=0,
            sample_kwargs={"temperature": 0.5},
        )
    assert abs(metrics_rows(tmp_path)[0]["c2st_auc"] - 0.5) < 0.07  # 1,000 items a class: s.e. ≈ 0.013
    assert "each class uses 1000" in caplog.text and "evaluated on 1000 samples" in caplog.text
    assert "evaluated on 5000" not in caplog.text


@pytest.mark.parametrize(
    ("arguments", "match"),
    [({"folds": 1}, r"`folds` must be an integer >= 2, got 1"), ({"num_samples": 6}, r"at least 2 \* `folds` = 10")],
)
def test_detector_arguments_are_refused_in_its_constructor(arguments: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DetectorMetrics(**arguments)


def test_a_detector_without_held_out_data_is_refused_before_generation_0(tmp_path: Path) -> None:
    from helpers import gaussian_points, loader

    model = GaussianModel(dim=2)
    loop = SelfConsumingLoop(1.0, 1, images_per_generation=None, output_dir=tmp_path / "s", seed=0)
    with pytest.raises(ValueError, match="DetectorMetrics needs a DataModule with a `test_dataloader`"):
        fit(tmp_path, model, loader(gaussian_points(20)), loop, callbacks=[DetectorMetrics(num_samples=100)])
    assert loop.history == []  # generation 0 never trained
    small = GaussianDataModule(n=50, n_test=6, batch_size=50, seed=0)
    with pytest.raises(ValueError, match=r"at least 2 \* folds = 10 held-out items, .* has 6"):
        fit(tmp_path / "b", model, small, loop, callbacks=[DetectorMetrics(num_samples=100)])


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"num_samples": math.nan}, r"`num_samples` must be an integer >= 2, got nan"),
        ({"every": math.nan}, r"`every` must be an integer >= 1, got nan"),
        ({"num_samples": "100"}, r"`num_samples` must be an integer >= 2, got '100' \(text"),
    ],
)
def test_evaluator_counts_are_whole_numbers(arguments: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DetectorMetrics(**arguments)
