"""Correctors on tokens (integer data): Hamming pairing, the per-position blend, k-medoids."""

from __future__ import annotations

import itertools

import pytest
import torch

from sclc_lightning.correctors import (
    IdentityCorrector,
    KMeansCorrector,
    OptimalTransportCorrector,
    RandomPairingCorrector,
    min_distance_matching,
)
from sclc_lightning.correctors.ot import pairwise_distance
from sclc_lightning.items import ItemCodec, RealData, SyntheticBatch


def real_tokens(sequences: torch.Tensor, labels: torch.Tensor | None = None) -> RealData:
    if labels is None:
        return RealData(list(sequences), ItemCodec.infer(sequences[0]))
    items = list(zip(sequences, labels.tolist()))
    return RealData(items, ItemCodec.infer(items[0], condition_field=1))


def test_matching_of_tokens_minimises_the_total_hamming_distance() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        y, z = torch.randint(4, (6, 5), generator=g), torch.randint(4, (6, 5), generator=g)
        match = min_distance_matching(y, z)
        cost = pairwise_distance(y, z)
        assert torch.equal(cost, (y[:, None] != z[None]).sum(-1).double())
        best = min(sum(float(cost[i, p[i]]) for i in range(6)) for p in itertools.permutations(range(6)))
        assert sum(float(cost[i, match[i]]) for i in range(6)) == best


def test_full_correction_of_tokens_gives_real_sequences_of_the_same_dtype() -> None:
    real = torch.randint(50, (30, 8), generator=torch.Generator().manual_seed(1))
    y = torch.randint(50, (10, 8), generator=torch.Generator().manual_seed(2))
    batch = SyntheticBatch(y, torch.arange(10))
    known = {tuple(r.tolist()) for r in real}
    for corrector in (OptimalTransportCorrector(strength=float("inf")), RandomPairingCorrector(strength=float("inf"))):
        out = corrector.correct(
            batch, generation=1, generator=torch.Generator().manual_seed(3), reference=real_tokens(real)
        )
        assert out.dtype == torch.int64 and len({tuple(r.tolist()) for r in out}) == 10
        assert all(tuple(r.tolist()) in known for r in out)


@pytest.mark.parametrize("gamma", [0.25, 1.0, 4.0])
def test_the_token_blend_shrinks_the_hamming_distance_by_1_over_1_plus_gamma(gamma: float) -> None:
    """Each position takes the target's token with probability γ/(1+γ): over N = 20,000 positions
    that all differ, the share kept has standard error sqrt(p(1-p)/N) <= 0.0036; 5 of them is the
    tolerance."""
    points = torch.zeros(200, 100, dtype=torch.int64)
    targets = torch.ones(200, 100, dtype=torch.int64)
    out = OptimalTransportCorrector(strength=gamma).mix(points, targets, torch.Generator().manual_seed(0))
    kept = float((out == points).double().mean())
    assert abs(kept - 1 / (1 + gamma)) < 5 * (kept * (1 - kept) / 20_000) ** 0.5 + 1e-12
    assert bool(((out == points) | (out == targets)).all())  # every token is one of the two


def test_the_token_blend_needs_a_generator_and_matching_dtypes() -> None:
    corrector = RandomPairingCorrector(strength=1.0)
    tokens = torch.zeros(2, 3, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"mixing tokens at strength 1\.0 needs a generator"):
        corrector.mix(tokens, tokens)
    with pytest.raises(ValueError, match=r"targets are torch\.float32, the points torch\.int64"):
        corrector.mix(tokens, tokens.float(), torch.Generator())
    assert torch.equal(IdentityCorrector().mix(tokens, tokens + 1), tokens)  # γ = 0 keeps the points


def test_ot_pairs_tokens_within_their_label() -> None:
    real = torch.cat([torch.zeros(10, 4, dtype=torch.int64), torch.full((10, 4), 7)])
    labels = torch.tensor([0] * 10 + [1] * 10)
    y = torch.tensor([[7, 7, 7, 7], [0, 0, 0, 0]])  # each looks like the other class
    batch = SyntheticBatch(y, torch.tensor([0, 10]), torch.tensor([0, 1]))
    corrector = OptimalTransportCorrector(strength=float("inf"))
    out = corrector.correct(
        batch, generation=1, generator=torch.Generator().manual_seed(0), reference=real_tokens(real, labels)
    )
    assert out.tolist() == [[0, 0, 0, 0], [7, 7, 7, 7]]


def test_kmeans_on_tokens_uses_hamming_medoids() -> None:
    """Two families of sequences; the centres are real sequences, one per family, and a generated
    sequence moves to the medoid of its family."""
    g = torch.Generator().manual_seed(0)
    base = torch.tensor([[1, 2, 3, 4, 5, 6], [9, 8, 7, 6, 5, 4]])
    noisy = base.repeat_interleave(20, 0)
    flips = torch.rand(noisy.shape, generator=g) < 0.15
    noisy = torch.where(flips, torch.randint(10, noisy.shape, generator=g), noisy)
    real = real_tokens(noisy)
    corrector = KMeansCorrector(num_clusters=2)
    corrector.setup(real, torch.Generator().manual_seed(0))
    (centres,) = corrector.centres.values()
    known = {tuple(r.tolist()) for r in noisy}
    assert centres.dtype == torch.int64 and all(tuple(c.tolist()) in known for c in centres)
    assert sorted(int(pairwise_distance(c[None], base).argmin()) for c in centres) == [0, 1]
    y = torch.tensor([[1, 2, 3, 0, 5, 6], [9, 8, 0, 6, 5, 0]])
    out = corrector.correct(SyntheticBatch(y, torch.arange(2)), generation=1, generator=g, reference=real)
    nearest = pairwise_distance(y, centres).argmin(1)
    assert torch.equal(out, centres[nearest]) and out.dtype == torch.int64
