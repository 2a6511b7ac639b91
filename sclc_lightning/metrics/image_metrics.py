"""FID, KID and class accuracy of an image model after each generation, through torchmetrics."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file, save_file
from torch import Tensor
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance
from typing_extensions import override

from sclc_lightning.data.budget import make_generator
from sclc_lightning.loop import current_generation, eval_mode, find_loop
from sclc_lightning.metrics.features import FeatureView, inception_feature_extractor, load_or_train_classifier

__all__ = ["ImageMetrics"]


class ImageMetrics(Callback):
    """After every ``every`` generations, sample ``num_samples`` images (the same count each
    time) and log ``fid``, ``kid_mean``, ``kid_std`` against the DataModule's held-out images and,
    for class-conditional models, ``class_accuracy`` (share of samples the domain classifier
    assigns to the label they were generated for).

    Args:
        num_samples: images generated per evaluation (FID depends on it: keep it fixed).
        feature: ``"domain"``: features of a small classifier trained once on the real training
            data and cached (offline); ``"inception"``: torchmetrics' Inception-v3, whose weights
            must be on disk.
        num_classes: classes of the labels (the second item field); required for ``"domain"``.
        cache_dir: where the classifier and the reference statistics are cached (default
            ``~/.cache/sclc_lightning``); runs of a grid on the same data share them.
        classifier_epochs: training epochs of the domain classifier.
        every: evaluate every ``every`` generations.
        seed: seed of the evaluation draws.
    """

    def __init__(
        self,
        num_samples: int = 1000,
        feature: str = "domain",
        num_classes: int | None = None,
        cache_dir: str | None = None,
        classifier_epochs: int = 30,
        every: int = 1,
        kid_subset_size: int = 100,
        seed: int = 0,
    ) -> None:
        if feature not in ("domain", "inception"):
            raise ValueError(f"`feature` must be 'domain' or 'inception', got {feature!r}.")
        if feature == "domain" and not num_classes:
            raise ValueError("`num_classes` is required with feature='domain' (the classifier's classes).")
        self.num_samples, self.feature, self.num_classes = num_samples, feature, num_classes
        self.cache_dir = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "sclc_lightning"
        self.classifier_epochs, self.every, self.kid_subset_size, self.seed = (
            classifier_epochs,
            every,
            kid_subset_size,
            seed,
        )
        self._ready = False

    # -- setup: classifier and reference statistics, once per run --------------------------
    def _held_out(self, trainer: pl.Trainer) -> tuple[Tensor, Tensor | None]:
        datamodule = trainer.datamodule  # type: ignore[attr-defined]
        if datamodule is None or not hasattr(datamodule, "test_dataloader"):
            raise ValueError("ImageMetrics needs a DataModule with a `test_dataloader` (held-out images).")
        images, labels = [], []
        for batch in datamodule.test_dataloader():
            images.append(batch[0] if isinstance(batch, (tuple, list)) else batch)
            if isinstance(batch, (tuple, list)):
                labels.append(torch.as_tensor(batch[1]))
        return torch.cat(images), (torch.cat(labels) if labels else None)

    def _prepare(self, trainer: pl.Trainer) -> None:
        self.reference, self.reference_labels = self._held_out(trainer)
        subset = min(self.kid_subset_size, self.num_samples, len(self.reference))
        if self.feature == "inception":
            self.classifier = None
            feature: Any = inception_feature_extractor()
            self.fid = FrechetInceptionDistance(feature=feature, normalize=True, reset_real_features=False)
            self.kid = KernelInceptionDistance(
                feature=feature, normalize=True, reset_real_features=False, subset_size=subset
            )
            real = self._to_inception(self.reference)
            self.fid.update(real, real=True)
            self.kid.update(real, real=True)
        else:
            loop = find_loop(trainer)
            if loop is None:
                raise ValueError("ImageMetrics with feature='domain' needs the SelfConsumingLoop (its real data).")
            assert self.num_classes is not None
            self.classifier, key = load_or_train_classifier(
                loop.real_data.dataset, self.num_classes, self.cache_dir, self.classifier_epochs, self.seed
            )
            view = FeatureView(self.classifier)
            self.fid = FrechetInceptionDistance(feature=view, reset_real_features=False)
            self.kid = KernelInceptionDistance(feature=view, reset_real_features=False, subset_size=subset)
            real_features = self._reference_features(view, key)
            # Feed the cached features as torchmetrics' update would (states of FID and KID).
            features = real_features.double()
            self.fid.real_features_sum += features.sum(0)
            self.fid.real_features_cov_sum += features.T @ features
            self.fid.real_features_num_samples += features.shape[0]
            self.kid.real_features.append(real_features)
        self._ready = True

    def _reference_features(self, view: FeatureView, key: str) -> Tensor:
        digest = hashlib.sha256(self.reference.float().numpy().tobytes()).hexdigest()[:16]
        path = self.cache_dir / f"reference-{key}-{digest}.safetensors"
        if path.exists():
            return load_file(str(path))["features"]
        with torch.no_grad():
            features = torch.cat([view(chunk) for chunk in self.reference.split(512)])
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"features": features.contiguous()}, str(path))
        return features

    @staticmethod
    def _to_inception(images: Tensor) -> Tensor:
        images = ((images.float() + 1) / 2).clamp(0, 1)
        return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images

    # -- per generation ---------------------------------------------------------------------
    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        generation = current_generation(trainer)
        if generation % self.every:
            return
        if not self._ready:
            self._prepare(trainer)
        labels = None
        kwargs: dict[str, Any] = {"generator": make_generator(self.seed, "sample", 30_000 + generation)}
        if self.reference_labels is not None and getattr(pl_module.hparams, "get", lambda _k: None)("num_classes"):
            labels = self.reference_labels[torch.arange(self.num_samples) % len(self.reference_labels)]
            kwargs["conditions"] = labels.to(pl_module.device)
        with eval_mode(pl_module):
            samples = pl_module.sample(self.num_samples, **kwargs).detach().cpu().float()  # type: ignore[operator]
        fake = self._to_inception(samples) if self.feature == "inception" else samples
        self.fid.reset()
        self.kid.reset()
        self.fid.update(fake, real=False)
        self.kid.update(fake, real=False)
        kid_mean, kid_std = self.kid.compute()
        metrics = {"fid": float(self.fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std)}
        if labels is not None and self.classifier is not None:
            with torch.no_grad():
                predicted = self.classifier(samples).argmax(dim=1)
            metrics["class_accuracy"] = float((predicted == labels).float().mean())
        pl_module.log_dict(metrics, on_step=False, on_epoch=True)
