"""Image metrics: the cached domain classifier, FID/KID/class accuracy wiring, Inception check."""

from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from helpers import trainer
from torch import Tensor

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.callbacks import ImageMetrics
from sclc_lightning.callbacks.generation_csv import GenerationCSV
from sclc_lightning.datasets.images import DigitsDataModule
from sclc_lightning.metrics import load_or_train_classifier
from sclc_lightning.metrics.features import InceptionFeatures, inception_weights_path


def test_domain_classifier_is_trained_once_and_cached(tmp_path: Path) -> None:
    data = DigitsDataModule()
    data.setup("fit")
    assert data.train_set is not None and data.test_set is not None
    classifier, key = load_or_train_classifier(data.train_set, 10, tmp_path)
    images = torch.stack([data.test_set[i][0] for i in range(len(data.test_set))])
    labels = torch.tensor([data.test_set[i][1] for i in range(len(data.test_set))])
    with torch.no_grad():
        accuracy = float((classifier(images).argmax(1) == labels).float().mean())
    assert accuracy > 0.85  # a useful feature space for FID on digits
    assert [p.name for p in tmp_path.iterdir()] == [f"classifier-{key}.safetensors"]
    again, same_key = load_or_train_classifier(data.train_set, 10, tmp_path)
    assert same_key == key and all(
        torch.equal(a, b) for a, b in zip(classifier.state_dict().values(), again.state_dict().values())
    )


class Replay(pl.LightningModule):
    """'Generates' held-out images of the requested labels (or noise): a reference for the metrics."""

    def __init__(self, bank: Tensor, bank_labels: Tensor, noise: bool, distinct: int = 20):
        super().__init__()
        self.bank, self.bank_labels, self.noise, self.distinct = bank, bank_labels, noise, distinct
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.save_hyperparameters({"num_classes": 10})

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return (self.weight**2).sum()

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def sample(self, num_samples: int, *, generator: Any = None, conditions: Any = None) -> Tensor:
        if self.noise:
            return torch.rand(num_samples, 1, 8, 8, generator=generator) * 2 - 1
        picks = [int(torch.nonzero(self.bank_labels == int(c))[i % self.distinct]) for i, c in enumerate(conditions)]
        return self.bank[torch.tensor(picks)]


def test_image_metrics_separate_real_from_noise(tmp_path: Path) -> None:
    data = DigitsDataModule()
    data.setup("fit")
    assert data.train_set is not None
    bank = torch.stack([data.train_set[i][0] for i in range(len(data.train_set))])
    bank_labels = torch.tensor([data.train_set[i][1] for i in range(len(data.train_set))])
    rows = {}
    for noise, distinct in ((False, 20), (True, 20), (False, 1)):
        folder = tmp_path / f"noise{noise}-{distinct}"
        metrics = ImageMetrics(num_samples=300, num_classes=10, cache_dir=str(tmp_path / "cache"))
        loop = SelfConsumingLoop(0.0, 0, images_per_generation=64, output_dir=folder / "s", condition_field=1)
        run = trainer(folder, [loop, metrics, GenerationCSV()])
        run.fit(Replay(bank, bank_labels, noise, distinct), datamodule=data)
        (rows[noise, distinct],) = list(csv.DictReader(open(folder / "metrics.csv")))
    real, noise_row, collapsed = rows[False, 20], rows[True, 20], rows[False, 1]
    # training images against held-out ones are close in the classifier's feature space; noise is far
    assert float(noise_row["fid"]) > 5 * float(real["fid"]) and float(noise_row["kid_mean"]) > 5 * float(
        real["kid_mean"]
    )
    assert float(real["class_accuracy"]) > 0.9 > 0.5 > float(noise_row["class_accuracy"])
    # torch-fidelity precision/recall: real images lie on the real manifold, noise does not;
    # one picture per label covers little of it (low recall) and has no within-label variety
    assert float(real["precision"]) > 0.8 > 0.2 > float(noise_row["precision"])
    assert float(real["recall"]) > float(collapsed["recall"]) + 0.2
    assert float(collapsed["class_diversity"]) == 0.0 < float(real["class_diversity"])
    assert 0.5 < float(real["diversity_ratio"]) < 1.5 and float(collapsed["diversity"]) < float(real["diversity"])
    assert all(float(r["time_evaluating_s"]) > 0 for r in rows.values())
    # one classifier and one set of reference statistics, computed by the first run, reused by the second
    assert len(list((tmp_path / "cache").glob("classifier-*"))) == 1
    assert len(list((tmp_path / "cache").glob("reference-*"))) == 1


def test_missing_inception_weights_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCLC_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(FileNotFoundError, match=r"Inception-v3 FID weights not found.*feature='domain'"):
        inception_weights_path(tmp_path / "missing.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"weights-inception-2015-12-05-6726825d\.pth"):
        inception_weights_path()
    with pytest.raises(ValueError, match="`num_classes` is required with feature='domain'"):
        ImageMetrics()
    # the fit stops before training when the weights are missing
    metrics = ImageMetrics(feature="inception", inception_weights=str(tmp_path / "missing.pth"))
    run = pl.Trainer(default_root_dir=str(tmp_path), callbacks=[metrics], max_epochs=1, logger=False)
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        run.fit(Replay(torch.zeros(1, 1, 8, 8), torch.zeros(1), True), datamodule=DigitsDataModule())
    assert run.global_step == 0


def _random_inception_weights(path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A weights file shaped like torch-fidelity's, with random values (the real one is not here)."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    with monkeypatch.context() as patch:
        patch.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: {})
        patch.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.manual_seed(0)
        net = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(net.state_dict(), path)
    return path


def test_unknown_inception_weights_are_never_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crafted = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    crafted.write_bytes(b"not torch-fidelity's file: unpickling it could run code")
    loaded: list[str] = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loaded.append("loaded"))
    with pytest.raises(
        ValueError, match=r"has SHA-256 [0-9a-f]{64}, not that of torch-fidelity's Inception-v3 weights"
    ):
        InceptionFeatures(crafted)
    monkeypatch.setenv("SCLC_INCEPTION_WEIGHTS", str(crafted))
    with pytest.raises(ValueError, match=r"pass its digest as `inception_sha256`"):
        inception_weights_path()
    with pytest.raises(ValueError, match=r"not that of the `inception_sha256` given"):
        inception_weights_path(crafted, "0" * 64)
    assert loaded == []  # refused before anything read it as a torch file
    digest = hashlib.sha256(crafted.read_bytes()).hexdigest()
    assert inception_weights_path(crafted, digest) == crafted  # the explicit opt-in


def test_inception_path_runs_end_to_end_with_a_local_weights_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = _random_inception_weights(tmp_path / "inception.pth", monkeypatch)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()  # not torch-fidelity's file: opt in by digest
    features = InceptionFeatures(weights, digest)
    out = features(torch.rand(2, 1, 8, 8) * 2 - 1)
    assert out.shape == (2, 2048) and features.key().startswith("inception-")
    data = DigitsDataModule(test_fraction=0.03)  # 54 held-out images through Inception on a CPU
    data.setup("fit")
    assert data.train_set is not None
    bank = torch.stack([data.train_set[i][0] for i in range(40)])
    labels = torch.tensor([data.train_set[i][1] for i in range(40)])
    metrics = ImageMetrics(
        num_samples=40,
        feature="inception",
        inception_weights=str(weights),
        inception_sha256=digest,
        cache_dir=str(tmp_path / "cache"),
    )
    loop = SelfConsumingLoop(0.0, 0, images_per_generation=32, output_dir=tmp_path / "s")
    run = trainer(tmp_path, [loop, metrics, GenerationCSV()])
    run.fit(Replay(bank, labels, noise=True), datamodule=data)
    (row,) = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    # random weights give meaningless values, but every metric comes out finite from this path
    for key in ("fid", "kid_mean", "precision", "recall", "diversity", "diversity_ratio"):
        assert math.isfinite(float(row[key])), key
    assert float(row["fid"]) > 0
    assert len(list((tmp_path / "cache").glob("reference-inception-*"))) == 1
