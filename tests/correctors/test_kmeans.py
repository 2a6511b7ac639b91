import torch

from sclc_lightning.correctors import KMeansCorrector
from sclc_lightning.items import ItemCodec, RealData, SyntheticBatch


def clustered_real() -> RealData:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    points = torch.cat([c + 0.01 * torch.randn(25, 2, generator=g) for c in centres])
    labels = torch.tensor([0, 0, 1, 1]).repeat_interleave(25)
    items = list(zip(points, labels.tolist()))
    return RealData(items, ItemCodec.infer(items[0], condition_field=1))


def test_centres_fitted_per_class_and_projection() -> None:
    real = clustered_real()
    corrector = KMeansCorrector(num_clusters=2)
    corrector.setup(real, torch.Generator().manual_seed(0))
    assert sorted(corrector.centres) == [0, 1] and all(c.shape == (2, 2) for c in corrector.centres.values())
    y = torch.tensor([[9.0, 1.0], [9.0, 1.0]])
    batch = SyntheticBatch(y, torch.arange(2), torch.tensor([0, 1]))
    out = corrector.correct(batch, generation=1, generator=torch.Generator(), reference=real)
    # class 0 has centres near (0,0),(10,0): (9,1) goes to (10,0); class 1 to (10,10)
    assert torch.allclose(out, torch.tensor([[10.0, 0.0], [10.0, 10.0]]), atol=0.02)


def test_finite_strength_moves_part_way() -> None:
    real = clustered_real()
    corrector = KMeansCorrector(strength=1.0, num_clusters=2, per_class=False)
    corrector.setup(real, torch.Generator().manual_seed(0))
    assert list(corrector.centres) == [None]
    y = torch.tensor([[8.0, 2.0]])
    out = corrector.correct(
        SyntheticBatch(y, torch.arange(1), torch.tensor([0])), generation=1, generator=torch.Generator(), reference=real
    )
    centre = corrector.nearest_centres(y, None)
    assert torch.allclose(out, (y + centre.float()) / 2)
