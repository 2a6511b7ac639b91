"""Feature extractors for image metrics: a domain classifier trained on the real data (the
Gillman authors' LeNet FID for MNIST), cached on disk, or Inception-v3 when its weights are local.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "DomainClassifier",
    "FeatureView",
    "InceptionFeatures",
    "MotionClassifier",
    "inception_weights_path",
    "load_or_train_classifier",
]

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_WEIGHTS}"


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


class FeatureView(nn.Module):
    """The classifier seen as a feature extractor (what torchmetrics' ``feature=`` expects)."""

    def __init__(self, classifier: DomainClassifier | MotionClassifier):
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.num_features

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier.features(images)


def _dataset_key(dataset: Dataset[Any], num_classes: int, epochs: int, seed: int, kind: str = "image") -> str:
    size = len(dataset)  # type: ignore[arg-type]
    settings: list[Any] = [size, num_classes, epochs, seed] + ([] if kind == "image" else [kind])
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
    if kind == "image":
        model = DomainClassifier(dataset[0][0].shape[0], num_classes)
    else:
        model = MotionClassifier(dataset[0][0].shape[-1], num_classes)
    if path.exists():
        model.load_state_dict(load_file(str(path)))
        return model.eval(), key
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)
    model.train()
    for _ in range(epochs):
        for images, labels in loader:
            loss = nn.functional.cross_entropy(model(images), torch.as_tensor(labels))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)
    return model.eval(), key


def inception_weights_path(weights: str | Path | None = None) -> Path:
    """Where the FID Inception-v3 weights are: ``weights`` if given, else ``$SCLC_INCEPTION_WEIGHTS``,
    else torch-fidelity's file in the torch hub cache (``<TORCH_HOME>/hub/checkpoints``).

    Raises:
        FileNotFoundError: the file is missing (nothing is downloaded at run time); the message
            says where to put it and how to pick the domain feature network instead.
    """
    if weights is None:
        weights = os.environ.get("SCLC_INCEPTION_WEIGHTS") or None
    path = Path(weights) if weights is not None else Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(
            f"Inception-v3 FID weights not found: expected {str(path)!r}. Download {INCEPTION_URL} on a"
            " machine with internet and put it there (or pass `inception_weights=PATH`, or set"
            " SCLC_INCEPTION_WEIGHTS), or use feature='domain' to compute FID with a classifier"
            " trained on the real data."
        )
    return path


class InceptionFeatures(nn.Module):
    """torchmetrics' FID Inception-v3 (torch-fidelity's port of the TF graph) on images in [-1, 1].

    Grey images are repeated to three channels and quantised to ``uint8`` as the standard FID
    pipeline does; the output is the 2048-d pool features.
    """

    num_features = 2048

    def __init__(self, weights: str | Path | None = None):
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.weights = inception_weights_path(weights)
        self.net = NoTrainInceptionV3(
            name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=str(self.weights)
        )

    def key(self) -> str:
        """A short fingerprint of the weights file (for caching reference statistics)."""
        digest = hashlib.sha256(str(self.weights.stat().st_size).encode())
        with open(self.weights, "rb") as f:
            digest.update(f.read(1 << 20))
        return "inception-" + digest.hexdigest()[:16]

    def forward(self, images: Tensor) -> Tensor:
        x = ((images.float() + 1) / 2).clamp(0, 1)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return self.net((x * 255).round().to(torch.uint8))
