import pytest
import torch

from sclc_lightning.correctors import FilterCorrector
from sclc_lightning.items import ItemCodec, RealData, SyntheticBatch


def score(data: torch.Tensor, conditions: object) -> torch.Tensor:
    return -data[:, 0].abs()


REFERENCE = RealData([torch.zeros(1)], ItemCodec.infer(torch.zeros(1)))


@pytest.mark.parametrize(("gamma", "kept"), [(0.0, 10), (1.0, 5), (3.0, 3), (float("inf"), 1)])
def test_keeps_best_and_refills(gamma: float, kept: int) -> None:
    data = torch.arange(10.0)[:, None]  # score = -value: best are the smallest
    batch = SyntheticBatch(data, torch.arange(10), [f"c{i}" for i in range(10)])
    out = FilterCorrector(score, strength=gamma).correct(
        batch, generation=1, generator=torch.Generator().manual_seed(0), reference=REFERENCE
    )
    assert len(out) == 10
    assert out.data[:kept, 0].tolist() == list(range(kept))
    assert set(out.data[:, 0].tolist()) <= set(range(kept))  # refills are copies of kept points
    assert out.conditions == [f"c{int(v)}" for v in out.data[:, 0].tolist()]  # conditions follow their point


def test_score_from_import_path_and_bad_scores() -> None:
    corrector = FilterCorrector("tests.correctors.test_filter:score")
    assert corrector.score(torch.tensor([[-2.0]]), None).item() == -2.0
    with pytest.raises(ValueError, match="does not name an importable object"):
        FilterCorrector("no.such.module:f")
    four = SyntheticBatch(torch.zeros(4, 1), torch.arange(4))
    for scores, shown in ((torch.zeros(3), r"\(3,\)"), (torch.zeros(2, 2), r"\(2, 2\)")):  # (2, 2): four values
        bad = FilterCorrector(lambda d, c, scores=scores: scores)
        with pytest.raises(ValueError, match=rf"one value per point, shape \(4,\) or \(4, 1\), got {shown}"):
            bad.correct(four, generation=1, generator=torch.Generator(), reference=REFERENCE)
