"""Correctors that keep some of the model's samples: the loop draws K·m for m kept, in rounds when
fewer are accepted, keeps the budget exact, logs the factor and stops past `max_oversampling`;
curation chooses by Bradley–Terry sampling; a kept point is never a repeat."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import CrashAt, fit, manifest, metrics_rows
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from sclc_lightning import SelfConsumingLoop, SyntheticDataError
from sclc_lightning.correctors import (
    CurationCorrector,
    FilterCorrector,
    OversamplingError,
    Score,
    SelectingCorrector,
    VerifierCorrector,
)
from sclc_lightning.items.codec import ItemCodec, SyntheticBatch
from sclc_lightning.items.real import RealData
from sclc_lightning.models import GaussianModel
from sclc_lightning.store import SyntheticStore

SCRIPT = Path(__file__).parent / "scripts" / "reward_program.py"


def first_coordinate(data: torch.Tensor, conditions: Any) -> torch.Tensor:
    return data[:, 0]


def accept_positive(data: torch.Tensor, conditions: Any) -> torch.Tensor:
    return data[:, 0]


def accept_nothing(data: torch.Tensor, conditions: Any) -> torch.Tensor:
    return torch.full((len(data),), -1.0)


def accept_real(data: torch.Tensor, conditions: Any) -> torch.Tensor:
    """1 for the real points (:func:`_real`), 0 for any other: no sample of a model is one."""
    real = _real().flatten()
    return torch.isin(data.flatten(1)[:, 0], real).double()


def _real(n: int = 200) -> torch.Tensor:
    return torch.randn(n, 1, generator=torch.Generator().manual_seed(0))


def _run(tmp_path: Path, corrector: Any, generations: int = 2, **loop: Any) -> tuple[SelfConsumingLoop, Any]:
    loop_ = SelfConsumingLoop(
        1.0,
        generations,
        images_per_generation=None,
        mode="replace",
        corrector=corrector,
        output_dir=tmp_path / "s",
        **{"seed": 0, **loop},  # the runs compared share their seed
    )
    model = GaussianModel(dim=1)
    fit(tmp_path, model, DataLoader(_real(), batch_size=200), loop_, logger=CSVLogger(tmp_path, name="csv"))  # type: ignore[arg-type]
    return loop_, model


def test_curation_draws_k_per_kept_point_and_logs_the_reward(tmp_path: Path) -> None:
    loop, _ = _run(tmp_path, CurationCorrector(f"{__name__}:first_coordinate", num_candidates=4))
    records = SyntheticStore(tmp_path / "s").records()
    assert [r.count for r in records.values()] == [200, 200]  # the budget stays exact
    for generation in (1, 2):
        stats = records[generation].statistics
        assert stats is not None and stats["oversampling"] == 4.0 and stats["acceptance_rate"] == 0.25
        assert stats["reward_mean_kept"] > stats["reward_mean"] + 0.3  # the chosen ones are better
        assert loop.history[generation].statistics == stats  # and the record logs them
    logged = [row for row in metrics_rows(next((tmp_path / "csv").glob("version_*"))) if "reward_mean" in row]
    assert len(logged) == 2 and all(row["oversampling"] == 4.0 for row in logged)
    # the model fitted on curated points moves toward the reward: E[r] = mean rises
    assert records[2].statistics["reward_mean"] > records[1].statistics["reward_mean"] + 0.3  # type: ignore[index]


def _batch(values: list[float]) -> SyntheticBatch:
    return SyntheticBatch(torch.tensor(values).reshape(-1, 1), torch.arange(len(values)))


def _reference() -> RealData:
    return RealData([torch.zeros(1)], ItemCodec.infer(torch.zeros(1)))


def test_bradley_terry_choice_is_a_softmax_sample_not_the_argmax() -> None:
    # Pairs (0, log 3): the second is chosen with probability 3/4. Over 4000 pairs the share has
    # standard error sqrt(3/16 / 4000) = 0.0068: 0.75 +- 0.03 (4.4 SE); the argmax would give 1.
    corrector = CurationCorrector(f"{__name__}:first_coordinate", num_candidates=2)
    batch = _batch([0.0, math.log(3.0)] * 4000)
    rows = corrector.choose(
        batch, keep=4000, generation=1, generator=torch.Generator().manual_seed(0), reference=_reference()
    )
    share = float((rows % 2 == 1).double().mean())
    assert abs(share - 0.75) < 0.03, share
    assert corrector.take_report()["reward_mean"] == pytest.approx(math.log(3.0) / 2)


def test_a_strict_verifier_is_served_in_rounds_and_an_impossible_one_stops_the_run(tmp_path: Path) -> None:
    # accepts x > 1.0: about 16% of a standard normal, so several rounds per generation
    verify = VerifierCorrector(f"{__name__}:accept_positive", rule="threshold", threshold=1.0)
    _run(tmp_path / "ok", verify, generations=1)
    (record,) = SyntheticStore(tmp_path / "ok" / "s").records().values()
    assert record.count == 200 and record.statistics is not None
    assert 0.08 < record.statistics["acceptance_rate"] < 0.3 and record.statistics["oversampling"] > 3
    stored = SyntheticStore(tmp_path / "ok" / "s").open_generation(record, ItemCodec.infer(torch.zeros(1)), 200)
    points = torch.stack([stored[i] for i in range(len(stored))]).flatten()
    assert points.unique().numel() == 200 and bool((points >= 1.0).all())  # new samples, each accepted
    rows = manifest(tmp_path / "ok" / "s")["generations"]
    assert rows[0]["statistics"]["oversampling"] == record.statistics["oversampling"]
    # accepts the real points and none of the model's: the first round of 200 keeps none, which
    # bounds the acceptance below 3/200 (95 %), under 1/max_oversampling: it stops at once
    only_real = VerifierCorrector(f"{__name__}:accept_real", rule="threshold", threshold=0.5)
    with pytest.raises(OversamplingError, match=r"kept none of the first 200 points drawn.*max_oversampling` \(10\)"):
        _run(tmp_path / "no", only_real, generations=1, max_oversampling=10)
    assert not SyntheticStore(tmp_path / "no" / "s").records()  # nothing half-made was stored
    # below 3 · max_oversampling draws the rounds go on (a strict verifier may keep none of a few):
    # 200, then 400 more, and 600 >= 3 · 200 bounds the acceptance below 1/200
    with pytest.raises(OversamplingError, match=r"kept none of the first 600 points drawn.*max_oversampling` \(200\)"):
        _run(tmp_path / "few", only_real, generations=1, max_oversampling=200)


def test_a_verifier_that_rejects_every_real_point_is_refused_before_generation_0(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    nothing = VerifierCorrector(f"{__name__}:accept_nothing", rule="threshold", threshold=0.0)
    with pytest.raises(
        SyntheticDataError, match=r"accepts none of 64 real items \(rule threshold 0.0; their scores run"
    ):
        _run(tmp_path, nothing, generations=1)
    assert not (tmp_path / "s").exists()  # refused in set-up: nothing was written, generation 0 never trained
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        _run(tmp_path / "ok", VerifierCorrector(f"{__name__}:accept_positive", threshold=0.0), generations=1)
    assert re.search(r"verifier accepts \d+\.\d% of 64 real items", caplog.text)


def test_max_oversampling_below_the_draws_the_settings_imply_is_refused_when_the_loop_is_made() -> None:
    curate = CurationCorrector(f"{__name__}:first_coordinate", num_candidates=8)
    with pytest.raises(ValueError, match=r"`max_oversampling` \(5\) is below the 8 points corrector 'curate' draws"):
        SelfConsumingLoop(1.0, 1, corrector=curate, max_oversampling=5)
    top = VerifierCorrector(f"{__name__}:first_coordinate", rule="top_fraction", fraction=0.05)
    with pytest.raises(ValueError, match=r"below the 20 points corrector 'verify' draws per point kept"):
        SelfConsumingLoop(1.0, 1, corrector=top, max_oversampling=10)
    SelfConsumingLoop(1.0, 1, corrector=curate, max_oversampling=8)  # exactly enough


class Repeats(SelectingCorrector):
    deciding = ()

    def choose(
        self, batch: SyntheticBatch, *, keep: int, generation: int, generator: Any, reference: Any
    ) -> torch.Tensor:
        return torch.zeros(keep, dtype=torch.int64)


def test_a_repeated_point_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SyntheticDataError, match="returned a row twice; a kept point is a new sample"):
        _run(tmp_path, Repeats(), generations=1)


def test_likelihood_selection_shrinks_the_spread(tmp_path: Path) -> None:
    # Qiao et al.'s selection: keep the most likely half under the current model. For a Gaussian
    # the kept half has variance 1 - 2*0.6745*phi(0.6745)/0.5 = 0.143 of the model's.
    _, model = _run(tmp_path, VerifierCorrector("model_log_prob", rule="top_fraction", fraction=0.5), generations=1)
    real_var = float(_real().var())
    assert float(model.cov) / real_var == pytest.approx(0.143, abs=0.05)


def test_the_selection_rounds_resume_bit_identically(tmp_path: Path) -> None:
    def run(folder: Path, **kwargs: Any) -> GaussianModel:
        loop = SelfConsumingLoop(
            1.0,
            3,
            images_per_generation=None,
            mode="replace",
            output_dir=folder / "s",
            corrector=VerifierCorrector(f"{__name__}:accept_positive", threshold=0.5),
            seed=0,
        )
        ckpt = ModelCheckpoint(dirpath=folder / "ck", every_n_epochs=1, save_top_k=-1, filename="{epoch}")
        model = GaussianModel(dim=1)
        fit(
            folder,
            model,
            DataLoader(_real(), batch_size=200),
            loop,
            enable_checkpointing=True,  # type: ignore[arg-type]
            callbacks=[ckpt, *kwargs.pop("callbacks", [])],
            **kwargs,
        )
        return model

    full = run(tmp_path / "a")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "b", callbacks=[CrashAt(2)])
    resumed = run(tmp_path / "b", ckpt_path=str(tmp_path / "b" / "ck" / "epoch=1.ckpt"))
    assert torch.equal(full.mean, resumed.mean) and torch.equal(full.cov, resumed.cov)
    a, b = (manifest(tmp_path / x / "s")["generations"] for x in "ab")
    assert [g["shards"] for g in a] == [g["shards"] for g in b]  # the same points, digest for digest


def test_a_reward_from_an_external_program() -> None:
    score = Score({"command": [sys.executable, str(SCRIPT), "{input}", "{output}"], "timeout": 60}, "reward")
    values = score(_batch([0.5, -1.0, 2.0]), 1, None)
    assert values.tolist() == [0.5, -1.0, 2.0]
    with pytest.raises(ValueError, match="not a registered score"):
        Score("no_such_score", "reward")


@pytest.mark.parametrize("how", ["program", "callable"])
def test_a_score_of_m_values_in_the_wrong_shape_is_refused(how: str) -> None:
    if how == "program":
        spec: Any = {"command": [sys.executable, str(SCRIPT), "{input}", "{output}", "pairs"], "timeout": 60}
    else:
        spec = lambda data, conditions: data[:, 0].reshape(-1, 2)  # noqa: E731
    with pytest.raises(
        ValueError, match=r"`reward` .* one value per point, shape \(4,\) or \(4, 1\), got shape \(2, 2\)"
    ):
        Score(spec, "reward")(_batch([0.5, -1.0, 2.0, 3.0]), 1, None)
    column = Score(lambda data, conditions: data[:, :1], "reward")  # (m, 1) is one value per point
    assert column(_batch([0.5, -1.0]), 1, None).tolist() == [0.5, -1.0]


def test_the_filter_reports_the_share_of_distinct_points() -> None:
    corrector = FilterCorrector(f"{__name__}:first_coordinate", strength=3.0)
    corrector.correct(
        _batch([float(i) for i in range(8)]), generation=1, generator=torch.Generator(), reference=_reference()
    )
    assert corrector.take_report() == {"unique_fraction": 0.25}


def test_a_model_without_log_prob_is_refused_before_generation_0(tmp_path: Path) -> None:
    from helpers import GaussianModel as Plain
    from helpers import gaussian_points, loader

    model = Plain()  # no `log_prob`
    loop = SelfConsumingLoop(
        0.5,
        1,
        images_per_generation=20,
        output_dir=tmp_path / "s",
        corrector=VerifierCorrector("model_log_prob", rule="top_fraction", fraction=0.5),
    )
    with pytest.raises(ValueError, match="calls the model's `log_prob\\(data\\)`, and GaussianModel has none"):
        fit(tmp_path, model, loader(gaussian_points(20)), loop)
    assert model.mean.abs().sum() == 0  # refused at set-up, before anything trained
