import torch

from sclc_lightning.correctors import IdealMixtureCorrector
from sclc_lightning.items import ItemCodec, RealData, SyntheticBatch


def test_replaces_with_probability_gamma_over_one_plus_gamma() -> None:
    real = torch.arange(1000.0)[:, None] + 1.0  # all > 0
    items = [(real[i], i % 10) for i in range(1000)]
    reference = RealData(items, ItemCodec.infer(items[0], condition_field=1))
    batch = SyntheticBatch(-torch.ones(1000, 1), torch.zeros(1000, dtype=torch.int64), torch.full((1000,), -1))
    out = IdealMixtureCorrector(strength=3.0).correct(
        batch, generation=1, generator=torch.Generator().manual_seed(0), reference=reference
    )
    replaced = out.data[:, 0] > 0
    # Binomial(1000, 0.75): mean 750, sd 13.7; 5 sd bounds.
    assert 680 <= int(replaced.sum()) <= 820
    # a replaced point is a real item whole: data, source index and condition agree
    idx = out.source_index[replaced]
    assert torch.equal(out.data[replaced, 0], idx.double().float() + 1.0)
    assert torch.equal(out.conditions[replaced], idx % 10)
    assert bool((out.conditions[~replaced] == -1).all()) and bool((out.data[~replaced] == -1).all())


def test_zero_and_infinite_strength() -> None:
    real = torch.ones(10, 1)
    reference = RealData(list(real), ItemCodec.infer(real[0]))
    batch = SyntheticBatch(torch.zeros(10, 1), torch.arange(10))
    g = torch.Generator().manual_seed(0)
    assert torch.equal(
        IdealMixtureCorrector(0.0).correct(batch, generation=1, generator=g, reference=reference).data, batch.data
    )
    assert torch.equal(
        IdealMixtureCorrector(float("inf")).correct(batch, generation=1, generator=g, reference=reference).data, real
    )
