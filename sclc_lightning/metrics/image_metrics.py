"""FID, KID, precision/recall, class accuracy and diversity of an image model after each generation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning.pytorch as pl
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance
from typing_extensions import override

from sclc_lightning.data.budget import make_generator
from sclc_lightning.loop import find_loop
from sclc_lightning.metrics._evaluator import (
    GenerationEvaluator,
    Precomputed,
    collect,
    conditions_for,
    extract,
    held_out,
)
from sclc_lightning.metrics.features import (
    FeatureView,
    InceptionFeatures,
    inception_weights_path,
    load_or_train_classifier,
)
from sclc_lightning.metrics.functional import feature_diversity

__all__ = ["ImageMetrics"]


class ImageMetrics(GenerationEvaluator):
    """After every ``every`` generations, sample ``num_samples`` images (the same count each
    time, shared out over the DDP ranks and gathered) and compare them with the DataModule's
    held-out images. Logged:

    - ``fid``, ``kid_mean``, ``kid_std``: torchmetrics' FID and KID;
    - ``precision``, ``recall``: torch-fidelity's k-NN precision and recall
      (``prc_neighborhood`` neighbours) on the same features;
    - ``diversity``: mean feature distance of random sample pairs, and ``diversity_ratio``, the
      same divided by the held-out images' value (1 = as varied as real data);
    - class-conditional models: ``class_accuracy`` (share of samples the domain classifier
      assigns to the label they were generated for) and ``class_diversity`` (``diversity``
      within each requested label, averaged; low values mean one picture per label);
    - ``time_evaluating_s``: how long it took.

    Args:
        num_samples: images generated per evaluation (FID depends on it: keep it fixed).
        feature: ``"domain"``: features of a small classifier trained once on the real training
            data and cached (offline); ``"inception"``: the standard FID Inception-v3
            (torchmetrics / torch-fidelity), whose weights must be on disk (checked when the fit
            starts).
        reference: the images compared with: ``"test"``, the DataModule's held-out split, or
            ``"train"``, the real training set (Bertrand et al.'s protocol: all generated images
            against the training set).
        inception_weights: the Inception-v3 weights file (default ``$SCLC_INCEPTION_WEIGHTS``,
            else torch-fidelity's file in the torch hub cache).
        num_classes: classes of the labels (the second item field); required for ``"domain"``.
        cache_dir: where the classifier and the reference statistics are cached (default
            ``~/.cache/sclc_lightning``); runs of a grid on the same data share them.
        classifier_epochs: training epochs of the domain classifier.
        every: evaluate every ``every`` generations.
        kid_subset_size: KID subset size (cut to the number of samples).
        prc_neighborhood: the k of the k-NN balls of precision and recall.
        batch_size: images per ``sample`` call.
        seed: seed of the evaluation draws.
    """

    headline = "fid"

    def __init__(
        self,
        num_samples: int = 1000,
        feature: str = "domain",
        num_classes: int | None = None,
        inception_weights: str | None = None,
        reference: str = "test",
        cache_dir: str | None = None,
        classifier_epochs: int = 30,
        every: int = 1,
        kid_subset_size: int = 100,
        prc_neighborhood: int = 3,
        batch_size: int = 500,
        seed: int = 0,
    ) -> None:
        if feature not in ("domain", "inception"):
            raise ValueError(f"`feature` must be 'domain' or 'inception', got {feature!r}.")
        if feature == "domain" and not num_classes:
            raise ValueError("`num_classes` is required with feature='domain' (the classifier's classes).")
        super().__init__(num_samples, every, batch_size, seed)
        self.feature, self.num_classes = feature, num_classes
        self.cache_dir = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "sclc_lightning"
        self.classifier_epochs, self.kid_subset_size = classifier_epochs, kid_subset_size
        self.prc_neighborhood, self.inception_weights = prc_neighborhood, inception_weights
        if reference not in ("test", "train"):
            raise ValueError(f"`reference` must be 'test' or 'train', got {reference!r}.")
        self.reference_split = reference
        self._ready = False

    # -- setup: classifier and reference statistics, once per run --------------------------
    def _held_out(self, trainer: pl.Trainer) -> tuple[Tensor, Tensor | None]:
        if self.reference_split == "test":
            return held_out(trainer, "ImageMetrics")
        loop = find_loop(trainer)
        if loop is None:
            raise ValueError("ImageMetrics with reference='train' needs the SelfConsumingLoop (its real data).")
        return collect(DataLoader(loop.real_data.dataset, batch_size=self.batch_size))

    def _prepare(self, trainer: pl.Trainer) -> None:
        self.reference, self.reference_labels = self._held_out(trainer)
        subset = min(self.kid_subset_size, self.num_samples, len(self.reference))
        view: nn.Module
        if self.feature == "inception":
            self.classifier = None
            view = InceptionFeatures(self.inception_weights)
            key = view.key()
        else:
            loop = find_loop(trainer)
            if loop is None:
                raise ValueError("ImageMetrics with feature='domain' needs the SelfConsumingLoop (its real data).")
            assert self.num_classes is not None
            self.classifier, key = load_or_train_classifier(
                loop.real_data.dataset, self.num_classes, self.cache_dir, self.classifier_epochs, self.seed
            )
            view = FeatureView(self.classifier)
        self.view = view.to(trainer.strategy.root_device)
        self.real_features = self._reference_features(key)
        # FID and KID take the features computed here once, for the held-out and generated images.
        self.fid = FrechetInceptionDistance(feature=Precomputed(view.num_features), reset_real_features=False)
        self.kid = KernelInceptionDistance(
            feature=Precomputed(view.num_features), reset_real_features=False, subset_size=subset
        )
        self.fid.update(self.real_features, real=True)
        self.kid.update(self.real_features, real=True)
        pairs = make_generator(self.seed, "evaluate", 0, 2)
        self.real_diversity = feature_diversity(self.real_features, generator=pairs)
        self._ready = True

    def _reference_features(self, key: str) -> Tensor:
        digest = hashlib.sha256(self.reference.float().numpy().tobytes()).hexdigest()[:16]
        path = self.cache_dir / f"reference-{key}-{digest}.safetensors"
        if path.exists():
            return load_file(str(path))["features"]
        features = extract(self.view, self.reference, self.batch_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"features": features.contiguous()}, str(path))
        return features

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.feature == "inception":
            inception_weights_path(self.inception_weights)  # fail before training, not after a generation

    # -- per generation ---------------------------------------------------------------------
    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> dict[str, float]:
        if not self._ready:
            self._prepare(trainer)
        labels = None
        if self.reference_labels is not None and getattr(pl_module.hparams, "get", lambda _k: None)("num_classes"):
            labels = conditions_for(self.reference_labels, self.num_samples)
        samples = self.draw(trainer, pl_module, generation, labels).float()
        features = extract(self.view, samples, self.batch_size)
        self.fid.reset()
        self.kid.reset()
        self.fid.update(features, real=False)
        self.kid.update(features, real=False)
        kid_mean, kid_std = self.kid.compute()
        metrics = {"fid": float(self.fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std)}
        metrics.update(self._precision_recall(features, self.real_features))
        pairs = make_generator(self.seed, "evaluate", generation, 1)
        metrics["diversity"] = feature_diversity(features, generator=pairs)
        metrics["diversity_ratio"] = metrics["diversity"] / self.real_diversity
        if labels is not None:
            metrics["class_diversity"] = feature_diversity(features, labels, generator=pairs)
            if self.classifier is not None:  # the domain classifier's head on the features just computed
                predicted = extract(self.classifier.head, features, self.batch_size).argmax(dim=1)
                metrics["class_accuracy"] = float((predicted == labels).float().mean())
        return metrics

    def _precision_recall(self, fake: Tensor, real: Tensor) -> dict[str, float]:
        from torch_fidelity.metric_prc import prc_features_to_metric

        out = prc_features_to_metric(
            fake, real, prc_neighborhood=self.prc_neighborhood, prc_batch_size=10_000, save_cpu_ram=True, verbose=False
        )
        return {"precision": float(out["precision"]), "recall": float(out["recall"])}
