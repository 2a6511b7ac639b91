"""The digits recipe (small variant of the Gillman authors' MNIST experiment)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sclc_lightning.data.images import CIFAR10DataModule, DigitsDataModule, ImageFolderDataModule, MNIST5kDataModule

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
