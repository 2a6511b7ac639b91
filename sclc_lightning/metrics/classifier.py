"""Classifiers trained on the real data, whose penultimate layer gives the features of the
image and motion metrics (the Gillman authors' LeNet FID for MNIST), trained once and cached.

Training draws every random number (initial weights, batch order) from a generator of its own
seed, never from the global one, so evaluating in the middle of a fit changes nothing in it.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from sclc_lightning._files import atomic_path

__all__ = ["DomainClassifier", "MotionClassifier", "load_or_train_classifier", "train_classifier"]


class DomainClassifier(nn.Module):
    """A LeNet-style classifier; its penultimate layer (``num_features`` wide) gives the features.

    Args:
        channels: image channels.
        num_classes: classes.
        width: channels of the first convolution.
    """

    def __init__(self, channels: int, num_classes: int, width: int = 32, num_features: int = 64):
        super().__init__()
        self.num_features = num_features
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
            nn.Flatten(), nn.Linear(8 * width, num_features), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(num_features, num_classes)

    def features(self, images: Tensor) -> Tensor:
        """``(N, num_features)`` features of images in [-1, 1]."""
        out: Tensor = self.body(images.float())
        return out

    def forward(self, images: Tensor) -> Tensor:
        """Class logits ``(N, num_classes)``."""
        out: Tensor = self.head(self.features(images))
        return out


class MotionClassifier(nn.Module):
    """A 1-D convolutional classifier over motions ``(N, frames, features)``; its pooled
    penultimate layer (``num_features`` wide) gives the features (the motion "encoder" of the
    evaluation, as the text-motion encoders of HumanML3D evaluations).

    Args:
        channels: values per frame.
        num_classes: motion labels.
        width: convolution channels.
    """

    def __init__(self, channels: int, num_classes: int, width: int = 64, num_features: int = 64):
        super().__init__()
        self.num_features = num_features
        self.body = nn.Sequential(
            nn.Conv1d(channels, width, 5, padding=2), nn.ReLU(),
            nn.Conv1d(width, width, 5, padding=2, stride=2), nn.ReLU(),
            nn.Conv1d(width, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
            nn.Flatten(), nn.Linear(width, num_features), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(num_features, num_classes)

    def features(self, motions: Tensor) -> Tensor:
        """``(N, num_features)`` features of motions ``(N, frames, channels)``."""
        out: Tensor = self.body(motions.float().transpose(1, 2))
        return out

    def forward(self, motions: Tensor) -> Tensor:
        """Label logits ``(N, num_classes)``."""
        out: Tensor = self.head(self.features(motions))
        return out


def _initialise(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation of linear and convolution layers, from ``generator``."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                bound = 1.0 / math.sqrt(module.weight[0].numel())
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)


def train_classifier(model: nn.Module, dataset: Dataset[Any], epochs: int, seed: int, batch_size: int = 128) -> None:
    """Initialise ``model`` and train it with Adam on ``(x, label)`` items, every random draw
    from a generator seeded with ``seed`` (the global generators are left as they are)."""
    generator = torch.Generator().manual_seed(seed)
    _initialise(model, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)
    model.train()
    for _ in range(epochs):
        for inputs, labels in loader:
            loss = nn.functional.cross_entropy(model(inputs), torch.as_tensor(labels))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def _dataset_key(dataset: Dataset[Any], num_classes: int, epochs: int, seed: int, kind: str = "image") -> str:
    size = len(dataset)  # type: ignore[arg-type]
    # "local-rng": classifiers trained since initialisation draws from a local generator.
    settings: list[Any] = [size, num_classes, epochs, seed, "local-rng"] + ([] if kind == "image" else [kind])
    digest = hashlib.sha256(json.dumps(settings).encode())
    for index in range(0, size, max(1, size // 16)):  # a content fingerprint of the data
        image, label = dataset[index][0], dataset[index][1]
        digest.update(image.float().numpy().tobytes())
        digest.update(str(int(label)).encode())
    return digest.hexdigest()[:16]


def load_or_train_classifier(
    dataset: Dataset[Any],
    num_classes: int,
    cache_dir: str | Path,
    epochs: int = 30,
    seed: int = 0,
    batch_size: int = 128,
    kind: str = "image",
) -> tuple[Any, str]:
    """A classifier trained once on ``dataset`` (items ``(x, label)``) and cached in
    ``cache_dir`` under a key of the data and settings; later calls load it.

    Args:
        kind: ``"image"`` (:class:`DomainClassifier`, items ``(C, H, W)``) or ``"motion"``
            (:class:`MotionClassifier`, items ``(frames, features)``).

    Returns:
        The classifier (eval mode, CPU) and its cache key.
    """
    if kind not in ("image", "motion"):
        raise ValueError(f"`kind` must be 'image' or 'motion', got {kind!r}.")
    key = _dataset_key(dataset, num_classes, epochs, seed, kind)
    path = Path(cache_dir) / f"classifier-{key}.safetensors"
    model: DomainClassifier | MotionClassifier
    with torch.device("meta"):  # no parameters drawn from the global generator
        if kind == "image":
            model = DomainClassifier(dataset[0][0].shape[0], num_classes)
        else:
            model = MotionClassifier(dataset[0][0].shape[-1], num_classes)
    model = model.to_empty(device="cpu")
    if path.exists():
        model.load_state_dict(load_file(str(path)))
        return model.eval(), key
    train_classifier(model, dataset, epochs, seed, batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # grid points that start together train and write it at once
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    return model.eval(), key
