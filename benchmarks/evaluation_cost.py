"""Evaluation cost per generation: cached reference statistics versus recomputing them.

On the MNIST-5k held-out split (1,000 images, 32x32) with the domain feature network:
1. first evaluation of a run with an empty cache (train the classifier, compute the reference
   features) versus a run whose cache is warm (a later run of the same grid);
2. one generation's FID/KID with the reference statistics kept (what ImageMetrics does) versus
   recomputing the reference features every generation.

Usage: ``python benchmarks/evaluation_cost.py [--samples 1000] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from sclc_lightning.datasets.images import MNIST5kDataModule
from sclc_lightning.metrics import FeatureView, load_or_train_classifier


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    data = MNIST5kDataModule()
    data.setup("fit")
    assert data.train_set is not None and data.test_set is not None
    reference = torch.stack([data.test_set[i][0] for i in range(len(data.test_set))])
    fake = torch.rand(args.samples, 1, 32, 32) * 2 - 1
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        classifier, _ = load_or_train_classifier(data.train_set, 10, cache)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        classifier, _ = load_or_train_classifier(data.train_set, 10, cache)
        warm = time.perf_counter() - start
    view = FeatureView(classifier)

    def reference_features() -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([view(chunk) for chunk in reference.split(512)])

    cached = reference_features()
    kept, recomputed = [], []
    for _ in range(args.repeats):
        for keep in (True, False):
            fid = FrechetInceptionDistance(feature=view, reset_real_features=False)
            kid = KernelInceptionDistance(feature=view, reset_real_features=False, subset_size=100)
            start = time.perf_counter()
            features = (cached if keep else reference_features()).double()
            fid.real_features_sum += features.sum(0)
            fid.real_features_cov_sum += features.T @ features
            fid.real_features_num_samples += features.shape[0]
            kid.real_features.append(features.float())
            fid.update(fake, real=False)
            kid.update(fake, real=False)
            fid.compute()
            kid.compute()
            (kept if keep else recomputed).append(time.perf_counter() - start)
    print(f"classifier: train and cache {cold:.1f} s (once per dataset), load from cache {warm * 1000:.0f} ms")
    print(
        f"per generation ({args.samples} samples): reference kept {statistics.median(kept) * 1000:.0f} ms,"
        f" reference recomputed {statistics.median(recomputed) * 1000:.0f} ms (median of {args.repeats})"
    )


if __name__ == "__main__":
    main()
