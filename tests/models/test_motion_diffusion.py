"""The conditional motion diffusion model in the loop, with the physics corrector."""

from __future__ import annotations

from pathlib import Path

import torch
from helpers import trainer

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.datasets.motion import MotionDataModule
from sclc_lightning.models import MotionDiffusion


def test_model_learns_and_samples_labelled_motions_in_a_physics_loop(tmp_path: Path) -> None:
    data = MotionDataModule(n=64, n_test=8, frames=16, batch_size=16, cache_dir=str(tmp_path / "cache"))
    model = MotionDiffusion(frames=16, width=32, layers=2, heads=2, timesteps=100, sampling_steps=10, lr=2e-3)
    loop = SelfConsumingLoop(
        0.5,
        1,
        images_per_generation=64,
        initial_images=640,
        mode="augment",
        corrector="physics",
        corrector_kwargs={"num_workers": 0},
        condition_field=1,
        output_dir=tmp_path / "s",
    )
    fit = trainer(tmp_path, [loop])
    fit.fit(model, datamodule=data)
    from safetensors.torch import load_file

    stored = load_file(str(next((tmp_path / "s" / "gen_0001").glob("*.safetensors"))))
    assert stored["data"].shape == (32, 16, 9) and stored["field.1"].shape == (32,)
    assert data.train_set is not None  # each corrected motion keeps the label it was generated for
    assert torch.equal(stored["field.1"], data.train_set.labels[stored["source_index"]])
    assert bool(model.standardised) and float(model.std.min()) > 0
    labels = torch.tensor([0, 1, 2, 3] * 2)
    samples = model.sample(8, generator=torch.Generator().manual_seed(0), conditions=labels)
    again = model.sample(8, generator=torch.Generator().manual_seed(0), conditions=labels)
    assert samples.shape == (8, 16, 9) and torch.isfinite(samples).all() and torch.equal(samples, again)
    # a few hundred steps already put motions on the data's scale (metres and radians)
    assert float(samples.abs().max()) < 10
