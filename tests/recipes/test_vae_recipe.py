"""VAEs on their own samples (Shumailov et al. 2024; Gerstgrasser et al. 2024): the model's bound,
the held-out scores callback, and the recipe's replace vs accumulate through ``sclc fit``."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from helpers import metrics_rows
from safetensors.torch import load_file

from sclc_lightning.cli import main
from sclc_lightning.models import ImageVAE

RECIPES = Path(__file__).parents[2] / "recipes"


def test_the_bound_is_the_reconstruction_plus_the_kl_and_samples_are_images() -> None:
    torch.manual_seed(0)
    model = ImageVAE(image_size=4, latent_dim=2, hidden=8)
    images = torch.rand(5, 1, 4, 4) * 2 - 1
    bound = model.score_items((images, torch.zeros(5)), batch_idx=3)["nelbo"]
    assert bound.shape == (5,) and torch.equal(bound, model.score_items(images, batch_idx=3)["nelbo"])  # seeded
    # with a deterministic encoder (log-variance -> -inf) the bound tends to BCE(decoder(mean)) + |mean|^2/2 + ...
    assert (bound > 0).all()
    # 16 pixels of Bernoulli(p) targets: the bound is at least the targets' entropy
    target = (images.flatten(1) + 1) / 2
    entropy = -(target * target.clamp_min(1e-12).log() + (1 - target) * (1 - target).clamp_min(1e-12).log()).sum(1)
    assert (bound >= entropy - 1e-4).all()
    samples = model.sample(7, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (7, 1, 4, 4) and samples.min() >= -1 and samples.max() <= 1


def _spread(run_dir: Path, generation: int) -> float:
    """Mean per-pixel standard deviation of a generation's synthetic images (their diversity)."""
    shard = next((run_dir / "synthetic").glob(f"gen_{generation:04d}/*.safetensors"))
    return float(load_file(str(shard))["data"].flatten(1).std(0).mean())


def test_replace_degrades_more_than_accumulate_with_scores_and_sample_grids(tmp_path: Path) -> None:
    rows, spread = {}, {}
    for mode in ("replace", "accumulate"):
        run_dir = tmp_path / mode
        args = ["fit", "--config", str(RECIPES / "vae_replace_accumulate.yaml")]
        args += ["--config", str(RECIPES / "small" / "vae_replace_accumulate.yaml"), "--run_dir", str(run_dir)]
        assert main([*args, "--loop.mode", mode]) == 0
        rows[mode] = metrics_rows(run_dir)
        assert [int(r["generation"]) for r in rows[mode]] == [0, 1, 2]
        assert all(math.isfinite(r["test_nelbo"]) and 0 <= r["tail_share"] <= 1 for r in rows[mode])
        assert abs(rows[mode][0]["tail_share"] - 0.05) < 0.01  # the reference: generation 0's 95th percentile
        assert sorted(p.name for p in (run_dir / "samples").glob("*.png"))[-1] == "generation_0002.png"
        assert (run_dir / "synthetic" / "initial_state.safetensors").exists()  # start_from: initial
        spread[mode] = [_spread(run_dir, g) for g in (1, 2)]
    assert rows["replace"][0]["test_nelbo"] == rows["accumulate"][0]["test_nelbo"]  # the same generation 0
    # the sources' direction: the held-out loss degrades and the samples lose diversity, less so
    # when the real data stay
    assert rows["replace"][2]["test_nelbo"] > rows["accumulate"][2]["test_nelbo"] + 0.3
    assert rows["replace"][2]["test_nelbo"] > rows["replace"][0]["test_nelbo"] + 1.0
    assert spread["replace"][1] < 0.6 * spread["replace"][0]
    assert spread["replace"][1] < 0.7 * spread["accumulate"][1]


def test_the_celeba_layer_runs_on_a_folder_of_images(tmp_path: Path) -> None:
    """The paper-size layer on 24 stand-in RGB images, shrunk to seconds by overrides."""
    from PIL import Image

    folder = tmp_path / "faces"
    folder.mkdir()
    generator = torch.Generator().manual_seed(0)
    for i in range(24):
        pixels = (torch.rand(16, 16, 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    args = [
        "fit",
        "--config",
        str(RECIPES / "vae_replace_accumulate.yaml"),
        "--config",
        str(RECIPES / "vae_celeba.yaml"),
    ]
    args += [
        "--data.init_args.root",
        str(folder),
        "--data.init_args.resolution",
        "8",
        "--data.init_args.num_workers",
        "0",
    ]
    args += ["--data.init_args.batch_size", "8", "--data.init_args.test_fraction", "0.25"]
    args += ["--model.init_args.image_size", "8", "--model.init_args.hidden", "16", "--model.init_args.latent_dim", "4"]
    args += ["--loop.generations", "1", "--loop.images_per_generation", "36", "--loop.sample_batch_size", "18"]
    args += ["--trainer.accelerator", "cpu", "--run_dir", str(tmp_path / "run")]
    assert main(args) == 0
    rows = metrics_rows(tmp_path / "run")
    assert [int(r["generation"]) for r in rows] == [0, 1] and all(math.isfinite(r["test_nelbo"]) for r in rows)
    assert load_file(str(next((tmp_path / "run" / "synthetic").glob("gen_0001/*.safetensors"))))["data"].shape == (
        18,
        3,
        8,
        8,
    )
