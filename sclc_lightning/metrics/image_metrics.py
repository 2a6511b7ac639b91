"""FID, KID, precision/recall, class accuracy and diversity of an image model after each generation."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torchmetrics.image.kid import KernelInceptionDistance
from typing_extensions import override

from sclc_lightning._checks import COUNT, Range, bounded, check_arguments, plain_numbers
from sclc_lightning._files import atomic_path
from sclc_lightning._trainer import find_loop
from sclc_lightning.metrics.classifier import load_or_train_classifier
from sclc_lightning.metrics.evaluator import Precomputed, collect, extract, held_out
from sclc_lightning.metrics.feature_distance import FeatureDistanceEvaluator, FeatureSpace
from sclc_lightning.metrics.features import FeatureView, InceptionFeatures, inception_weights_path

__all__ = ["ImageMetrics"]


@plain_numbers
class ImageMetrics(FeatureDistanceEvaluator):
    """After every ``every`` generations, sample ``num_samples`` images (the same count each
    time, shared out over the DDP ranks and gathered) and compare them with the DataModule's
    held-out images. Logged:

    - ``fid``, ``kid_mean``, ``kid_std``: torchmetrics' FID and KID;
    - ``precision``, ``recall``: torch-fidelity's k-NN precision and recall
      (``prc_neighborhood`` neighbours) on the same features;
    - ``diversity``: mean feature distance of random sample pairs, and ``diversity_ratio``, the
      same divided by the held-out images' value (1 = as varied as real data);
    - class-conditional models: ``class_accuracy`` (share of samples the domain classifier
      assigns to the label they were generated for; ``real_class_accuracy``: its accuracy on the
      held-out images) and ``class_diversity`` (``diversity``
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
        inception_sha256: the SHA-256 the weights file must have (default: that of
            torch-fidelity's file); pass your own file's digest to use it on purpose.
        num_classes: classes of the labels (the second item field); required for ``"domain"``.
        cache_dir: where the classifier and the reference statistics are cached (default
            ``~/.cache/sclc_lightning``); runs of a grid on the same data share them.
        classifier_epochs: training epochs of the domain classifier.
        every: evaluate every ``every`` generations.
        kid_subset_size: KID subset size (cut to the number of samples).
        prc_neighborhood: the k of the k-NN balls of precision and recall.
        batch_size: images per ``sample`` call.
        seed: seed of the evaluation draws and of the feature classifier; `None` (default): the
            draws take the run's seed (the loop's) and the classifier seed 0 (the same instrument
            in every run, so that runs compare).

    Examples:
        >>> from sclc_lightning.callbacks import ImageMetrics
        >>> metrics = ImageMetrics(num_samples=1000, feature="domain", num_classes=10, every=5)
    """

    ranges = bounded(
        num_classes=Range(minimum=2), classifier_epochs=COUNT, kid_subset_size=Range(minimum=2), prc_neighborhood=COUNT
    )

    def __init__(
        self,
        num_samples: int = 1000,
        feature: Literal["domain", "inception"] = "domain",
        num_classes: int | None = None,
        inception_weights: str | None = None,
        inception_sha256: str | None = None,
        reference: Literal["test", "train"] = "test",
        cache_dir: str | None = None,
        classifier_epochs: int = 30,
        every: int = 1,
        kid_subset_size: int = 100,
        prc_neighborhood: int = 3,
        batch_size: int = 500,
        seed: int | None = None,
    ) -> None:
        check_arguments(ImageMetrics, locals())
        if feature == "domain" and not num_classes:
            raise ValueError("`num_classes` is required with feature='domain' (the classifier's classes).")
        super().__init__(num_samples, every, batch_size, seed)
        self.feature, self.num_classes = feature, num_classes
        self.cache_dir = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "sclc_lightning"
        self.classifier_epochs, self.kid_subset_size = classifier_epochs, kid_subset_size
        self.prc_neighborhood, self.inception_weights = prc_neighborhood, inception_weights
        self.inception_sha256 = inception_sha256
        if reference not in ("test", "train"):
            raise ValueError(f"`reference` must be 'test' or 'train', got {reference!r}.")
        self.reference_split = reference

    # -- once per run: the feature network and the reference features ------------------------
    def _reference_images(self, trainer: pl.Trainer) -> tuple[Tensor, Tensor | None]:
        if self.reference_split == "test":
            return held_out(trainer, "ImageMetrics")
        loop = find_loop(trainer)
        if loop is None:
            raise ValueError("ImageMetrics with reference='train' needs the SelfConsumingLoop (its real data).")
        return collect(DataLoader(loop.real_data.dataset, batch_size=self.batch_size))

    def feature_space(self, trainer: pl.Trainer) -> FeatureSpace:
        reference, labels = self._reference_images(trainer)
        view: InceptionFeatures | FeatureView
        head: nn.Module | None = None
        if self.feature == "inception":
            view = InceptionFeatures(self.inception_weights, self.inception_sha256)
            key = view.key()
        else:
            loop = find_loop(trainer)
            if loop is None:
                raise ValueError("ImageMetrics with feature='domain' needs the SelfConsumingLoop (its real data).")
            classifier, key = load_or_train_classifier(
                loop.real_data.dataset,
                self.num_classes or 0,
                self.cache_dir,
                self.classifier_epochs,
                self.classifier_seed,
            )
            view, head = FeatureView(classifier), classifier.head
        encoder = view.to(trainer.strategy.root_device)
        features = self._reference_features(encoder, reference, key)
        subset = min(self.kid_subset_size, self.num_samples, len(reference))
        # KID takes the features computed once, as FID does (see the base class).
        self.kid = KernelInceptionDistance(
            feature=Precomputed(view.num_features), reset_real_features=False, subset_size=subset
        )
        self.kid.update(features, real=True)
        return FeatureSpace(encoder, view.num_features, features, labels, head)

    def _reference_features(self, encoder: nn.Module, reference: Tensor, key: str) -> Tensor:
        digest = hashlib.sha256(reference.float().numpy().tobytes()).hexdigest()[:16]
        path = self.cache_dir / f"reference-{key}-{digest}.safetensors"
        if path.exists():
            return load_file(str(path))["features"]
        features = extract(encoder, reference, self.batch_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:  # a cache that other runs read, maybe while it is written
            save_file({"features": features.contiguous()}, str(tmp))
        return features

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.feature == "inception":
            # missing or unknown weights stop the fit before training, not after a generation
            inception_weights_path(self.inception_weights, self.inception_sha256)

    # -- per generation ---------------------------------------------------------------------
    def requested_labels(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, reference_labels: Tensor | None
    ) -> Tensor | None:
        if find_loop(trainer) is not None:  # as the loop samples
            return super().requested_labels(trainer, pl_module, reference_labels)
        conditional = getattr(pl_module.hparams, "get", lambda _k: None)("num_classes")
        return super().requested_labels(trainer, pl_module, reference_labels) if conditional else None

    def extra_metrics(
        self, space: FeatureSpace, samples: Tensor, features: Tensor, generation: int
    ) -> dict[str, float]:
        from torch_fidelity.metric_prc import prc_features_to_metric

        self.kid.reset()
        self.kid.update(features, real=False)
        kid_mean, kid_std = self.kid.compute()
        prc = prc_features_to_metric(
            features,
            space.reference_features,
            prc_neighborhood=self.prc_neighborhood,
            prc_batch_size=10_000,
            save_cpu_ram=True,
            verbose=False,
        )
        return {
            "kid_mean": float(kid_mean),
            "kid_std": float(kid_std),
            "precision": float(prc["precision"]),
            "recall": float(prc["recall"]),
        }
