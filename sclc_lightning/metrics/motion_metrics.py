"""Per-generation evaluation of a motion model: feature FID, matching accuracy, diversity and
physics violations (Gillman et al. §6 report FID, Diversity and Matching Score)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torchmetrics.image.fid import FrechetInceptionDistance
from typing_extensions import override

from sclc_lightning.data.budget import make_generator
from sclc_lightning.loop import current_generation, find_loop
from sclc_lightning.metrics._sampling import conditions_for, sample_across_ranks
from sclc_lightning.metrics.features import FeatureView, load_or_train_classifier
from sclc_lightning.metrics.functional import feature_diversity

__all__ = ["MotionMetrics"]


class MotionMetrics(Callback):
    """After every ``every`` generations, sample ``num_samples`` motions (the held-out labels,
    repeated, as conditions; shared out over DDP ranks) and log:

    - ``fid``: Fréchet distance (torchmetrics' FID with a custom feature network) between the
      features of generated and held-out motions, in the features of a motion classifier
      trained once on the real training motions and cached;
    - ``matching_accuracy``: share of samples the classifier assigns to the requested label
      (the stand-in for the paper's matching score);
    - ``diversity`` (mean feature distance of random pairs), ``diversity_ratio`` (over the
      held-out motions' value) and ``class_diversity`` (within each label, averaged);
    - ``penetration``, ``floating``, ``skating``, ``joint_limit``: the mean physics violations
      of the samples (:func:`sclc_lightning.physics.physics_violations`), and the same for the
      held-out motions once, as ``real_*``, for reference;
    - ``time_evaluating_s``.

    Args:
        num_samples: motions generated per evaluation (keep it fixed: FID depends on it).
        every: evaluate every ``every`` generations.
        num_classes: motion labels.
        cache_dir: where the classifier is cached (default ``~/.cache/sclc_lightning``).
        classifier_epochs: training epochs of the classifier.
        batch_size: motions per ``sample`` call.
        physics_workers: worker processes for the physics checks (0: this process).
        seed: seed of the evaluation draws.
    """

    def __init__(
        self,
        num_samples: int = 256,
        every: int = 1,
        num_classes: int = 4,
        cache_dir: str | None = None,
        classifier_epochs: int = 30,
        batch_size: int = 256,
        physics_workers: int = 0,
        seed: int = 0,
    ) -> None:
        if num_samples < 2 or every < 1 or batch_size < 1:
            raise ValueError(f"Need num_samples >= 2, every >= 1, batch_size >= 1; got {num_samples}, {every}.")
        self.num_samples, self.every, self.num_classes = num_samples, every, num_classes
        self.cache_dir = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "sclc_lightning"
        self.classifier_epochs, self.batch_size = classifier_epochs, batch_size
        self.physics_workers, self.seed = physics_workers, seed
        self._ready = False

    def _prepare(self, trainer: pl.Trainer) -> None:
        datamodule = trainer.datamodule  # type: ignore[attr-defined]
        if datamodule is None or not hasattr(datamodule, "test_dataloader"):
            raise ValueError("MotionMetrics needs a DataModule with a `test_dataloader` (held-out motions).")
        motions, labels = [], []
        for batch in datamodule.test_dataloader():
            motions.append(batch[0])
            labels.append(torch.as_tensor(batch[1]))
        self.reference, self.reference_labels = torch.cat(motions).float(), torch.cat(labels)
        loop = find_loop(trainer)
        if loop is None:
            raise ValueError("MotionMetrics needs the SelfConsumingLoop (its real data trains the classifier).")
        self.classifier, _ = load_or_train_classifier(
            loop.real_data.dataset, self.num_classes, self.cache_dir, self.classifier_epochs, self.seed, kind="motion"
        )
        self.fid = FrechetInceptionDistance(feature=FeatureView(self.classifier), reset_real_features=False)
        with torch.no_grad():
            self.real_features = torch.cat([self.classifier.features(c) for c in self.reference.split(self.batch_size)])
            for chunk in self.reference.split(self.batch_size):
                self.fid.update(chunk, real=True)
        self.real_diversity = feature_diversity(
            self.real_features, generator=make_generator(self.seed, "evaluate", 0, 2)
        )
        self.real_physics = self._physics(self.reference)
        self._ready = True

    def _physics(self, motions: Tensor) -> dict[str, float]:
        from sclc_lightning.physics import physics_violations

        values = physics_violations(motions.double().numpy(), num_workers=self.physics_workers)
        return {key: float(np.mean(v)) for key, v in values.items()}

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        generation = current_generation(trainer)
        if generation % self.every:
            return
        start = time.perf_counter()
        if not self._ready:
            self._prepare(trainer)
        labels = conditions_for(self.reference_labels, self.num_samples)
        samples = sample_across_ranks(
            trainer,
            pl_module,
            self.num_samples,
            seed=self.seed,
            stream=generation,
            batch_size=self.batch_size,
            conditions=labels,
            desc=f"Evaluating generation {generation}",
        ).float()
        self.fid.reset()
        with torch.no_grad():
            for chunk in samples.split(self.batch_size):
                self.fid.update(chunk, real=False)
            features = torch.cat([self.classifier.features(c) for c in samples.split(self.batch_size)])
            predicted = self.classifier.head(features).argmax(dim=1)
        pairs = make_generator(self.seed, "evaluate", generation, 1)
        metrics: dict[str, Any] = {
            "fid": float(self.fid.compute()),
            "matching_accuracy": float((predicted == labels).float().mean()),
            "diversity": feature_diversity(features, generator=pairs),
            "class_diversity": feature_diversity(features, labels, generator=pairs),
        }
        metrics["diversity_ratio"] = metrics["diversity"] / self.real_diversity
        metrics.update(self._physics(samples))
        metrics.update({f"real_{k}": v for k, v in self.real_physics.items()})
        metrics["time_evaluating_s"] = time.perf_counter() - start
        pl_module.log_dict(metrics, on_step=False, on_epoch=True)
        rank_zero_info(
            f"MotionMetrics: generation {generation} evaluated on {self.num_samples} motions in"
            f" {metrics['time_evaluating_s']:.1f} s (fid {metrics['fid']:.4g},"
            f" penetration {metrics['penetration']:.4f} m)."
        )
