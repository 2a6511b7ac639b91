"""Feature extractors for image and motion metrics: a trained classifier seen as a feature
network, or Inception-v3 (the standard FID network) when its weights are on disk.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from sclc_lightning.metrics.classifier import DomainClassifier, MotionClassifier
from sclc_lightning.store.verification import file_sha256

__all__ = ["INCEPTION_SHA256", "FeatureView", "InceptionFeatures", "inception_weights_path"]

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_WEIGHTS}"
#: SHA-256 of torch-fidelity's file; its name carries the first 8 hex digits, as torch.hub names do.
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"


class FeatureView(nn.Module):
    """The classifier seen as a feature extractor (what torchmetrics' ``feature=`` expects)."""

    def __init__(self, classifier: DomainClassifier | MotionClassifier):
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.num_features

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier.features(images)


def inception_weights_path(weights: str | Path | None = None, sha256: str | None = None) -> Path:
    """Where the FID Inception-v3 weights are: ``weights`` if given, else ``$SCLC_INCEPTION_WEIGHTS``,
    else torch-fidelity's file in the torch hub cache (``<TORCH_HOME>/hub/checkpoints``); checked
    against its SHA-256 before anything unpickles it.

    Args:
        weights: the file.
        sha256: the digest the file must have: ``None`` for torch-fidelity's file
            (:data:`INCEPTION_SHA256`); pass another file's own digest to use that file on purpose.

    Raises:
        FileNotFoundError: the file is missing (nothing is downloaded at run time); the message
            says where to put it and how to pick the domain feature network instead.
        ValueError: the file's digest is not the expected one (a torch checkpoint can run code
            when loaded, so an unknown file is never loaded).
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
    expected = (sha256 or INCEPTION_SHA256).lower()
    actual = file_sha256(path)
    if actual != expected:
        what = "torch-fidelity's Inception-v3 weights" if sha256 is None else "the `inception_sha256` given"
        raise ValueError(
            f"{path} has SHA-256 {actual}, not that of {what} ({expected}); it is not loaded (loading a"
            " torch file can run code). Use the original file, or, for a file you trust, pass its digest"
            " as `inception_sha256`."
        )
    return path


class InceptionFeatures(nn.Module):
    """torchmetrics' FID Inception-v3 (torch-fidelity's port of the TF graph) on images in [-1, 1].

    Grey images are repeated to three channels and quantised to ``uint8`` as the standard FID
    pipeline does; the output is the 2048-d pool features.
    """

    num_features = 2048

    def __init__(self, weights: str | Path | None = None, sha256: str | None = None):
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.weights = inception_weights_path(weights, sha256)
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
