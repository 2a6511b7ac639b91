"""Correction in weight space: Neon's θ = (1 + w)θ_r − wθ_s, applied by the loop at a
generation's end, undoes a sampling bias when w is derived for the model's own parameters; the
run's optimizer state is untouched and a resumed run corrects to the same weights."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from helpers import CrashAt, fit, gaussian_points, loader
from helpers import GaussianModel as GradientGaussian
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.correctors import NeonCorrector
from sclc_lightning.models import GaussianModel

TAU = 0.8


class Watch(pl.Callback):
    """The weights and optimizer state at generation 0's end and at generation 1's start (after
    the correction, before any training)."""

    def __init__(self) -> None:
        self.end: dict[str, Any] = {}
        self.start: dict[str, Any] = {}

    def _state(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        return {
            "weights": {k: v.clone() for k, v in pl_module.state_dict().items()},
            "optimizer": copy.deepcopy(trainer.optimizers[0].state_dict()),
        }

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == 0:
            self.end = self._state(trainer, pl_module)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == 1:
            self.start = self._state(trainer, pl_module)


def _neon_sigma_ratio(tmp_path: Path, seed: int, weight: float) -> float:
    """σ of the Neon model's samples at τ over σ_r, after one correction (n = 1,000 real points,
    θ_s refitted on 100,000 samples at τ)."""
    watch = Watch()
    neon = NeonCorrector(weight=weight, num_samples=100_000)
    loop = SelfConsumingLoop(
        1.0,
        1,
        images_per_generation=None,
        mode="replace",
        seed=seed,
        output_dir=tmp_path / f"{seed}_{weight}",
        sample_kwargs={"temperature": TAU},
        model_corrector=neon,
    )
    real = torch.randn(1000, 1, generator=torch.Generator().manual_seed(seed))
    fit(tmp_path, GaussianModel(dim=1), DataLoader(real, batch_size=1000), loop, callbacks=[watch])  # type: ignore[arg-type]
    sigma_r = float(watch.end["weights"]["cov"].sqrt())
    return TAU * float(watch.start["weights"]["cov"].sqrt()) / sigma_r


def test_w_derived_for_the_variance_undoes_the_temperature_and_others_do_not(tmp_path: Path) -> None:
    # GaussianModel holds the variance: θ_s = τ²σ_r², so θ = σ_r²(1 + w(1 − τ²)) and the samples at τ
    # have σ_r when w = 1/τ² = 1.5625. w = 1/τ = 1.25 (derived for σ) gives 0.963 σ_r, w = 1 (log σ)
    # 0.933 σ_r. θ_s from 10^5 samples: its variance is off by about 0.45%, σ by about 0.22%.
    for seed in range(10):
        assert abs(_neon_sigma_ratio(tmp_path, seed, 1 / TAU**2) - 1) < 0.03
        for wrong in (1 / TAU, 1.0):
            assert abs(_neon_sigma_ratio(tmp_path, seed, wrong) - 1) > 0.03


def test_the_run_optimizer_is_untouched_and_the_weights_move(tmp_path: Path) -> None:
    watch = Watch()
    neon = NeonCorrector(weight=0.5, num_samples=64, steps=5, lr=0.05, batch_size=16)
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=40, output_dir=tmp_path / "s", model_corrector=neon)
    torch.manual_seed(0)
    fit(tmp_path, GradientGaussian(), loader(gaussian_points(40)), loop, callbacks=[watch])
    assert not torch.equal(watch.end["weights"]["mean"], watch.start["weights"]["mean"])
    before, after = watch.end["optimizer"], watch.start["optimizer"]
    assert before["param_groups"] == after["param_groups"]
    for key, state in before["state"].items():
        assert all(torch.equal(state[k], after["state"][key][k]) for k in state if isinstance(state[k], torch.Tensor))


def test_a_resumed_run_corrects_to_the_same_weights(tmp_path: Path) -> None:
    def run(folder: Path, **kwargs: Any) -> GradientGaussian:
        neon = NeonCorrector(weight=0.5, num_samples=64, steps=5, lr=0.05, batch_size=16)
        loop = SelfConsumingLoop(
            0.5, 3, images_per_generation=40, output_dir=folder / "s", model_corrector=neon, seed=0
        )
        ckpt = ModelCheckpoint(dirpath=folder / "ck", every_n_epochs=1, save_top_k=-1, filename="{epoch}")
        torch.manual_seed(0)
        model = GradientGaussian(noise=0.2)
        fit(
            folder,
            model,
            loader(gaussian_points(40)),
            loop,
            enable_checkpointing=True,
            callbacks=[ckpt, *kwargs.pop("callbacks", [])],
            **kwargs,
        )
        return model

    full = run(tmp_path / "a")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "b", callbacks=[CrashAt(2)])
    resumed = run(tmp_path / "b", ckpt_path=str(tmp_path / "b" / "ck" / "epoch=1.ckpt"))
    assert torch.equal(full.mean, resumed.mean) and torch.equal(full.log_std, resumed.log_std)


def test_the_weight_is_recorded_and_a_bad_one_refused() -> None:
    loop = SelfConsumingLoop(1.0, 2, model_corrector="neon", model_corrector_kwargs={"weight": 1.5625})
    assert loop.fingerprint()["model_corrector"]["weight"] == 1.5625
    for bad in (math.nan, "1"):
        with pytest.raises(ValueError, match="`weight` must be a finite number"):
            NeonCorrector(weight=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`model_corrector_kwargs` needs a `model_corrector`"):
        SelfConsumingLoop(1.0, 2, model_corrector_kwargs={"weight": 1.0})


REFERENCE = str(Path(__file__).parent / "scripts" / "neon_reference.safetensors")


def test_a_reference_file_is_used_and_its_content_recorded(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from sclc_lightning.loop.fingerprint import STATE_FORMAT, fingerprint_changes

    model = GradientGaussian()
    weights = {"mean": torch.tensor([3.0, -1.0]), "log_std": torch.zeros(2)}
    path = tmp_path / "generation_0.safetensors"
    save_file(weights, str(path))
    neon = NeonCorrector(weight=0.0, num_samples=8, steps=1, lr=0.1, batch_size=4, reference=str(path))
    out = neon.correct_model(
        model,
        items=list(torch.randn(8, 2)),
        collate=torch.stack,
        reference=model.state_dict(),
        generation=0,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(out["mean"], weights["mean"])  # θ_r is the file's, not the model's
    before = SelfConsumingLoop(1.0, 2, model_corrector=neon).fingerprint()
    save_file({**weights, "mean": torch.tensor([2.0, -1.0])}, str(path))
    changed = NeonCorrector(weight=0.0, num_samples=8, steps=1, lr=0.1, batch_size=4, reference=str(path))
    (change,) = fingerprint_changes(
        before, SelfConsumingLoop(1.0, 2, model_corrector=changed).fingerprint(), STATE_FORMAT
    )
    assert change.startswith("model_corrector.reference: checkpoint {'path'") and "sha256" in change
    path.write_bytes(b"not weights")
    with pytest.raises(ValueError, match=f"Neon's `reference` {path} is not a .safetensors state dict"):
        NeonCorrector(weight=1.0, reference=str(path))
    with pytest.raises(ValueError, match="cannot be read"):
        NeonCorrector(weight=1.0, reference=str(tmp_path / "missing.ckpt"))


def test_every_neon_setting_is_deciding() -> None:
    from sclc_lightning._settings import constructor_arguments
    from sclc_lightning.loop.fingerprint import STATE_FORMAT, fingerprint_changes

    base = {"weight": 1.0}
    other = {"weight": 2.0, "num_samples": 7, "steps": 3, "lr": 0.5, "batch_size": 9, "reference": REFERENCE}
    assert set(other) == set(constructor_arguments(NeonCorrector))

    def fingerprint(settings: dict[str, Any]) -> dict[str, Any]:
        return SelfConsumingLoop(1.0, 2, model_corrector=NeonCorrector(**settings)).fingerprint()

    before = fingerprint(base)
    for argument, value in other.items():
        (change,) = fingerprint_changes(before, fingerprint({**base, argument: value}), STATE_FORMAT)
        assert change.startswith(f"model_corrector.{argument}: checkpoint "), change


def _sweep_module() -> Any:
    import importlib.util

    path = Path(__file__).parents[2] / "scripts" / "neon_sweep.py"
    spec = importlib.util.spec_from_file_location("neon_sweep", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_eight_gaussians_sweep_runs_and_w_0_is_the_base_model(tmp_path: Path) -> None:
    sweep = _sweep_module()
    arguments = ["--out", str(tmp_path), "--seeds", "0", "--epochs", "3", "--weights", "0", "0.5"]
    assert sweep.main([*arguments, "--eval-points", "500", "--samples", "200", "--finetune-steps", "3"]) == 0
    rows, (summary,) = _read(tmp_path / "sweep.csv"), _read(tmp_path / "summary.csv")
    assert [float(r["w"]) for r in rows] == [0.0, 0.5] and (tmp_path / "sweep.png").is_file()
    base = next(r for r in rows if float(r["w"]) == 0.0)
    assert float(summary["base_test"]) == float(base["frechet_test"])
    assert float(summary["chosen_w"]) in (0.0, 0.5)
    # w = 0 gives θ_r itself, bit for bit
    model = GradientGaussian()
    reference = {k: v.clone() + 1.0 for k, v in model.state_dict().items()}
    same = NeonCorrector(weight=0.0, num_samples=8, steps=2, lr=0.1, batch_size=4).correct_model(
        model,
        items=list(torch.randn(8, 2)),
        collate=torch.stack,
        reference=reference,
        generation=0,
        generator=torch.Generator().manual_seed(0),
    )
    assert all(torch.equal(same[k], reference[k]) for k in reference)


@pytest.mark.slow
def test_neon_lowers_the_frechet_distance_at_the_validation_chosen_w(tmp_path: Path) -> None:
    assert _sweep_module().main(["--out", str(tmp_path)]) == 0  # 3 seeds, 1,000 epochs, 7 values of w
    summary = _read(tmp_path / "summary.csv")
    base = sum(float(r["base_test"]) for r in summary) / len(summary)
    neon = sum(float(r["neon_test"]) for r in summary) / len(summary)
    assert neon < base and all(float(r["neon_test"]) <= float(r["base_test"]) * 1.02 for r in summary), summary


RECIPES = Path(__file__).parents[2] / "recipes"


def _sigma_ratios(tmp_path: Path, name: str, *overrides: str) -> list[float]:
    from sclc_lightning.cli import main

    run_dir = tmp_path / name
    args = ["fit", "--config", str(RECIPES / "neon_gaussian.yaml"), "--run_dir", str(run_dir)]
    assert main([*args, "--loop.generations", "5", "--trainer.enable_checkpointing", "false", *overrides]) == 0
    rows = _read(run_dir / "metrics.csv")
    return [float(r["sigma"]) / float(rows[0]["sigma"]) for r in rows]


def test_the_neon_gaussian_recipe_undoes_the_temperature_in_the_loop(tmp_path: Path) -> None:
    neon = _sigma_ratios(tmp_path, "neon")
    none = _sigma_ratios(tmp_path, "none", "--loop.model_corrector", "null", "--loop.model_corrector_kwargs", "null")
    sigma = _sigma_ratios(tmp_path, "sigma", "--loop.model_corrector_kwargs.weight", "1.25")
    assert none[-1] == pytest.approx(TAU**5, rel=0.1)  # the biased sampler alone: τ per generation
    assert abs(neon[-1] - 1) < 0.1  # n = 1,000: about 3% of refitting noise per generation
    assert sigma[-1] < neon[-1] - 0.1  # w derived for σ: 0.963 per generation


@pytest.mark.slow  # 22 s; by default the Neon Gaussian recipe in the loop and the 8-Gaussians sweep
def test_the_neon_8gaussians_small_variant_runs_both_arms(tmp_path: Path) -> None:
    from sclc_lightning.cli import main

    for name, extra in (
        ("neon", []),
        ("none", ["--loop.model_corrector", "null", "--loop.model_corrector_kwargs", "null"]),
    ):
        args = [
            "fit",
            "--config",
            str(RECIPES / "neon_8gaussians.yaml"),
            "--config",
            str(RECIPES / "small" / "neon_8gaussians.yaml"),
        ]
        assert main([*args, "--run_dir", str(tmp_path / name), "--trainer.enable_checkpointing", "false", *extra]) == 0
        rows = _read(tmp_path / name / "metrics.csv")
        assert [int(r["generation"]) for r in rows] == [0, 1, 2] and all(float(r["frechet"]) < 5 for r in rows)
    manifest = (tmp_path / "neon" / "synthetic" / "manifest.json").read_text()
    assert '"model_corrector": {"batch_size": 256, "lr": 0.0001, "name": "neon"' in manifest


class ManualGaussian(GradientGaussian):
    """Optimizes by hand: no loss for Neon to fine-tune with."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> None:
        optimizer = self.optimizers()
        loss = super().training_step(batch, batch_idx)
        optimizer.zero_grad()  # type: ignore[union-attr]
        self.manual_backward(loss)
        optimizer.step()  # type: ignore[union-attr]


def test_a_module_neon_cannot_work_on_is_refused_before_generation_0(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = ManualGaussian()
    loop = SelfConsumingLoop(
        0.5, 1, images_per_generation=20, output_dir=tmp_path / "s", model_corrector=NeonCorrector(1.0)
    )
    with pytest.raises(ValueError, match="optimizes manually"):
        fit(tmp_path, model, loader(gaussian_points(20)), loop)
    assert model.mean.abs().sum() == 0  # nothing trained
    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, str(other))
    loop = SelfConsumingLoop(
        0.5,
        1,
        images_per_generation=20,
        output_dir=tmp_path / "t",
        model_corrector=NeonCorrector(1.0, reference=str(other)),
    )
    with pytest.raises(ValueError, match=r"can take: other keys \(missing \['log_std', 'mean'\]"):
        fit(tmp_path, GradientGaussian(), loader(gaussian_points(20)), loop)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("shape", r"mean has shape \(3,\), the model's \(2,\) \(another architecture\)"),
        ("nan", r"cov holds 1 non-finite values"),
        ("negative variance", r"cov: the covariance is not positive semi-definite \(smallest eigenvalue -1\)"),
        ("dtype", r"mean is int64, the model's float32"),
    ],
)
def test_a_reference_the_model_cannot_hold_is_refused_before_generation_0(
    tmp_path: Path, change: str, match: str
) -> None:
    from safetensors.torch import save_file

    weights = GaussianModel(dim=2).state_dict()
    if change == "shape":
        weights["mean"] = torch.zeros(3)
    elif change == "nan":
        weights["cov"] = torch.tensor([[1.0, 0.0], [0.0, math.nan]])
    elif change == "negative variance":
        weights["cov"] = torch.diag(torch.tensor([1.0, -1.0]))
    else:
        weights["mean"] = torch.zeros(2, dtype=torch.int64)
    path = tmp_path / "reference.safetensors"
    save_file({k: v.contiguous() for k, v in weights.items()}, str(path))
    model = GaussianModel(dim=2)
    loop = SelfConsumingLoop(
        1.0, 1, mode="replace", output_dir=tmp_path / "s", model_corrector=NeonCorrector(1.0, reference=str(path))
    )
    with pytest.raises(
        ValueError, match=f"Neon's `reference` {path} does not hold weights GaussianModel can take: {match}"
    ):
        fit(tmp_path, model, DataLoader(torch.randn(20, 2), batch_size=20), loop)  # type: ignore[arg-type]
    assert loop.history == []  # refused before generation 0 trained


def test_weights_the_extrapolation_leaves_invalid_stop_the_run_naming_the_generation(tmp_path: Path) -> None:
    # w = 30 on a refit of 8 samples: (1 + w)Σ_r − wΣ_s loses positive definiteness as soon as
    # the refit's variance exceeds 31/30 of the reference's along some direction, which a refit on
    # 8 samples does about half the time per direction (seed 0 fixes which generation)
    neon = NeonCorrector(weight=30.0, num_samples=8)
    loop = SelfConsumingLoop(1.0, 3, mode="replace", output_dir=tmp_path / "s", seed=0, model_corrector=neon)
    with pytest.raises(
        ValueError, match=r"Neon's extrapolation at generation \d \(weight 30.0\) gives weights GaussianModel"
    ):
        fit(tmp_path, GaussianModel(dim=2), DataLoader(torch.randn(50, 2), batch_size=50), loop)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"lr": "1e-3"}, r"`lr` must be a finite number > 0, got '1e-3' \(text"),
        ({"steps": "200"}, r"`steps` must be an integer >= 1, got '200' \(text"),
        ({"num_samples": 0}, r"`num_samples` must be an integer >= 1, got 0"),
        ({"reference": 3}, r"`reference` must be 'current' or the path"),
    ],
)
def test_neon_arguments_are_refused_with_their_name(arguments: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NeonCorrector(weight=1.0, **arguments)
