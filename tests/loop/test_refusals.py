"""What the loop refuses, at set-up or when it happens, and how it says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import GaussianModel, TensorItems, fit, gaussian_points, loader, manifest
from torch.utils.data import DataLoader

from sclc_lightning import Corrector, SelfConsumingLoop, SyntheticDataError
from sclc_lightning.correctors import IdentityCorrector


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"synthetic_fraction": -0.5}, r"`synthetic_fraction` must be a finite number >= 0, got -0.5"),
        ({"synthetic_fraction": float("nan")}, r"`synthetic_fraction` must be a finite number >= 0, got nan"),
        ({"synthetic_fraction": float("inf")}, r"`synthetic_fraction` must be a finite number >= 0, got inf"),
        ({"generations": -1}, r"`generations` must be an integer >= 0, got -1"),
        ({"mode": "mix"}, r"`mode` must be one of .*, got 'mix'"),
        ({"corrector": "nope"}, r"`corrector` must be one of .*, got 'nope'"),
        ({"mode": "fresh"}, r"`real_per_generation` is required in mode 'fresh', got None"),
        ({"mode_kwargs": {"real_per_generation": 5}}, r"`mode_kwargs` has 'real_per_generation', which the mixing"),
        ({"images_per_generation": 0}, r"`images_per_generation` must be None or an integer >= 1, got 0"),
        ({"initial_images": -3}, r"`initial_images` must be None or an integer >= 0, got -3"),
        ({"mode_kwargs": {"max_synthetic": 5}}, r"`mode_kwargs` has 'max_synthetic', which the mixing policy"),
        ({"mode": "replace", "synthetic_fraction": 0.0}, r"`synthetic_fraction` must be > 0 in mode 'replace'"),
        ({"corrector": IdentityCorrector(), "corrector_kwargs": {"strength": 1}}, r"`corrector_kwargs` is only used"),
        ({"seed": -1}, r"`seed` must be None \(the run's seed\) or an integer >= 0, got -1"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], match: str) -> None:
    args = {"synthetic_fraction": 0.5, "generations": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        SelfConsumingLoop(**args)


def test_model_without_sample_is_refused(tmp_path: Path) -> None:
    class NoSample(GaussianModel):
        sample = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match=r"NoSample has no method `sample`.*`sampler='generate'`"):
        fit(tmp_path, NoSample(), loader(gaussian_points(10)), SelfConsumingLoop(0.5, 1))


def test_empty_real_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="real training set is empty"):
        empty = DataLoader(TensorItems(torch.empty(0, 2)), batch_size=10)
        fit(tmp_path, GaussianModel(), empty, SelfConsumingLoop(0.5, 1, output_dir=tmp_path / "s"))


def test_fresh_pool_smaller_than_subset_is_refused(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 1, mode="fresh", mode_kwargs={"real_per_generation": 20}, output_dir=tmp_path / "s")
    with pytest.raises(
        ValueError, match=r"`real_per_generation` must be at most the size of the real pool \(10\), got 20"
    ):
        fit(tmp_path, GaussianModel(), loader(gaussian_points(10)), loop)


class BadSampler(GaussianModel):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def sample(self, num_samples: int, *, generator: Any = None, conditions: Any = None) -> torch.Tensor:
        out = super().sample(num_samples, generator=generator)
        if self.trainer.current_epoch < 2:
            return out
        return {
            "count": out[:-1],
            "shape": out[:, :1],
            "dtype": out.double(),
            "nan": torch.where(torch.arange(num_samples)[:, None] == 3, float("nan"), out),
        }[self.kind]


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("count", r"generation 2, BadSampler.sample returned shape \(24, 2\), expected \(25, 2\)"),
        ("shape", r"generation 2, BadSampler.sample returned shape \(25, 1\), expected \(25, 2\)"),
        ("dtype", r"generation 2, BadSampler.sample returned dtype torch.float64, the real data is torch.float32"),
        ("nan", r"generation 2, BadSampler.sample returned 1 points with non-finite values"),
    ],
)
def test_bad_model_output_stops_the_run_and_keeps_disk_intact(tmp_path: Path, kind: str, match: str) -> None:
    loop = SelfConsumingLoop(0.5, 3, images_per_generation=20, output_dir=tmp_path / "s")
    with pytest.raises(SyntheticDataError, match=match):
        fit(tmp_path, BadSampler(kind), loader(gaussian_points(50)), loop)
    assert [g["generation"] for g in manifest(tmp_path / "s")["generations"]] == [1]
    # nothing half-written is left; the released lock file of the fit stays (an OS lock lives on it)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        ".sclc.lock",
        "gen_0001",
        "history.jsonl",
        "manifest.journal",
        "manifest.json",
    ]


def test_bad_corrector_output_names_the_corrector(tmp_path: Path) -> None:
    class Broken(Corrector):
        name = "broken"

        def correct(self, batch: Any, *, generation: int, generator: Any, reference: Any) -> torch.Tensor:
            return batch.data if generation < 2 else batch.data * float("inf")

    loop = SelfConsumingLoop(0.5, 3, images_per_generation=20, corrector=Broken(), output_dir=tmp_path / "s")
    with pytest.raises(SyntheticDataError, match=r"generation 2, corrector broken \(strength 1.0\) returned 25 points"):
        fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    assert [g["generation"] for g in manifest(tmp_path / "s")["generations"]] == [1]


def test_limit_train_batches_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"`Trainer\(limit_train_batches=...\)` must be 1.0, got 0.5"):
        fit(tmp_path, GaussianModel(), loader(gaussian_points(10)), SelfConsumingLoop(0.5, 1), limit_train_batches=0.5)


def test_trainer_settings_are_restored(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20, output_dir=tmp_path / "s")
    t = fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    assert t.reload_dataloaders_every_n_epochs == 0 and t.fit_loop.max_epochs == -1
