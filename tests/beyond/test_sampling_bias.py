"""Sampling bias as a loop setting: ``sample_kwargs`` reaches the sampler, is recorded with each
generation and in the checkpoint, is refused at set-up when the sampler cannot take it, and the
bundled models honour a temperature as their docs define it."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.loop.run import LoopState, check_resume
from sclc_lightning.models import GaussianModel
from sclc_lightning.sampler import SamplerError
from sclc_lightning.store import SyntheticStore
from tests import helpers


def _gaussian_run(tmp_path: Path, temperature: float | None, seed: int = 0, n: int = 2000) -> SelfConsumingLoop:
    kwargs: dict[str, Any] = {} if temperature is None else {"sample_kwargs": {"temperature": temperature}}
    loop = SelfConsumingLoop(
        1.0, 1, images_per_generation=None, mode="replace", seed=seed, output_dir=tmp_path, **kwargs
    )
    real = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).float()
    helpers.fit(tmp_path, GaussianModel(dim=1), DataLoader(real, batch_size=n), loop)  # type: ignore[arg-type]
    return loop


def test_the_temperature_reaches_the_sampler_and_is_recorded(tmp_path: Path) -> None:
    _gaussian_run(tmp_path / "plain", None)
    biased = _gaussian_run(tmp_path / "biased", 0.5)
    stored = {}
    for name in ("plain", "biased"):
        (stored[name],) = SyntheticStore(tmp_path / name).records().values()
    assert "sample_kwargs" not in stored["plain"].settings
    assert stored["biased"].settings["sample_kwargs"] == {"temperature": 0.5}
    assert biased.fingerprint()["sample_kwargs"] == {"temperature": 0.5}
    # a resume with another temperature is refused, naming the setting
    with pytest.raises(ValueError, match=r"sample_kwargs.temperature: checkpoint 0.5 vs now 0.9"):
        check_resume(LoopState("run", biased.fingerprint(), None, 1), _gaussian_fingerprint(0.9))


def _gaussian_fingerprint(temperature: float) -> dict[str, Any]:
    loop = SelfConsumingLoop(
        1.0, 1, images_per_generation=None, mode="replace", sample_kwargs={"temperature": temperature}
    )
    return loop.fingerprint()


def test_the_synthetic_spread_is_the_temperature_times_the_fit(tmp_path: Path) -> None:
    # x = mu + tau * Sigma^(1/2) z with the loop's generator: the same seed gives the same z, so the
    # synthetic points at tau = 0.5 are exactly half as far from the fitted mean as at tau = 1.
    points = {}
    for tau in (1.0, 0.5):
        loop = _gaussian_run(tmp_path / str(tau), tau)
        store = SyntheticStore(Path(loop.output_dir or ""))
        (record,) = store.records().values()
        generation = store.open_generation(record, _codec(), 2000)
        points[tau] = torch.stack([generation[i] for i in range(len(generation))]).double()
    real = torch.randn(2000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64).float().double()
    mean = real.mean(0)
    torch.testing.assert_close(points[0.5] - mean, 0.5 * (points[1.0] - mean), atol=1e-5, rtol=1e-4)


def _codec() -> Any:
    from sclc_lightning.items.codec import ItemCodec

    return ItemCodec.infer(torch.zeros(1))


def test_a_sampler_without_the_setting_is_refused_before_generation_0(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20, sample_kwargs={"temperature": 0.9}, output_dir=tmp_path)
    model = helpers.GaussianModel()  # sample(num_samples, *, generator=None, conditions=None)
    with pytest.raises(SamplerError, match=r"temperature.*`sample_kwargs` passes \['temperature'\]"):
        helpers.fit(tmp_path, model, helpers.loader(helpers.gaussian_points(20)), loop)
    assert model.seen == [] and not list(tmp_path.glob("**/manifest.json"))


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ({"generator": 1}, r"may not set \['generator'\]"),
        ({"temperature": float("nan")}, r"sample_kwargs\['temperature'\]"),
        ({"temperature": torch.tensor(1.0)}, r"sample_kwargs\['temperature'\]"),
        (["temperature"], "must be a mapping"),
    ],
)
def test_bad_sample_kwargs_are_refused_by_name(value: Any, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        SelfConsumingLoop(1.0, 1, sample_kwargs=value)


def _models() -> dict[str, tuple[Any, dict[str, Any]]]:
    from sclc_lightning.models import (
        GaussianMixtureModel,
        ImageVAE,
        LinearRegressionModel,
        MotionDiffusion,
        PointDDPM,
        PointFlowMatching,
    )

    motion = MotionDiffusion(frames=4, width=16, layers=1, heads=2, timesteps=10, sampling_steps=2)

    return {
        "gaussian": (GaussianModel(dim=2), {}),
        "mixture": (GaussianMixtureModel(num_components=3, dim=2), {}),
        "regression": (LinearRegressionModel(dim=3), {"conditions": torch.randn(6, 3)}),
        "cfm": (PointFlowMatching(dim=2, hidden=16, layers=2, sampling_steps=4), {}),
        "ddpm": (PointDDPM(dim=2, hidden=16, layers=2, timesteps=20, sampling_steps=5), {}),
        "vae": (ImageVAE(image_size=4, latent_dim=2, hidden=8), {}),
        "motion": (motion, {"conditions": torch.tensor([0, 1, 2, 3, 0, 1])}),
    }


@pytest.mark.parametrize("name", ["gaussian", "mixture", "regression", "cfm", "ddpm", "vae", "motion"])
def test_bundled_models_take_a_temperature(name: str) -> None:
    model, extra = _models()[name]
    model.eval()

    def draw(**kwargs: Any) -> torch.Tensor:
        return model.sample(6, generator=torch.Generator().manual_seed(3), **extra, **kwargs).double()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default, one, cold = draw(), draw(temperature=1.0), draw(temperature=0.25)
    torch.testing.assert_close(default, one)  # 1 is the model itself
    assert not torch.allclose(cold, one)
    if name == "motion":  # the guidance scale is a sampling setting too
        assert not torch.allclose(draw(guidance=1.0), one)
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match="`temperature` must be a finite number > 0"):
            draw(temperature=bad)
