"""Classifier training for the feature metrics draws only from its own generator."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import TensorDataset

from sclc_lightning.metrics import DomainClassifier, MotionClassifier, load_or_train_classifier, train_classifier


def _images(n: int = 64) -> TensorDataset:
    g = torch.Generator().manual_seed(5)
    labels = torch.arange(n) % 2
    images = torch.randn(n, 1, 8, 8, generator=g) + labels[:, None, None, None].float()
    return TensorDataset(images, labels)


def test_training_leaves_the_global_generators_alone_and_repeats() -> None:
    torch.manual_seed(123)
    np.random.seed(4)
    random.seed(5)
    states = torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    first = DomainClassifier(1, 2)
    second = DomainClassifier(1, 2)
    after_init = torch.random.get_rng_state()  # building the modules draws their default init
    train_classifier(first, _images(), epochs=2, seed=9, batch_size=16)
    assert torch.equal(torch.random.get_rng_state(), after_init)  # training drew nothing from it
    train_classifier(second, _images(), epochs=2, seed=9, batch_size=16)
    # the initial weights come from the seed too: both runs end with the same weights
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not torch.equal(states[0], after_init)


def test_load_or_train_draws_nothing_from_the_global_generator(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    model, _ = load_or_train_classifier(_images(), 2, tmp_path, epochs=1, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state) and isinstance(model, DomainClassifier)
    motions = TensorDataset(torch.randn(16, 20, 9, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 4)
    model, _ = load_or_train_classifier(motions, 4, tmp_path, epochs=1, seed=3, kind="motion")
    assert torch.equal(torch.random.get_rng_state(), state) and isinstance(model, MotionClassifier)
