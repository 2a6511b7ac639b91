"""The loop's seed is the run's seed unless given (sclc_lightning/seeding.py, run_seed and
fit_seed): runs that differ only in ``seed_everything`` differ, a run without one draws a fresh
seed that is logged and recorded, and a run repeated with its recorded seed is bit-identical."""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from helpers import GaussianModel, fit, gaussian_points, loader, manifest

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.datasets.toy import GaussianDataModule


def _run(tmp_path: Path, **loop: Any) -> tuple[GaussianModel, SelfConsumingLoop]:
    model = GaussianModel()
    looped = SelfConsumingLoop(
        **{"synthetic_fraction": 1.0, "generations": 3, "images_per_generation": 20, "mode": "replace", **loop}
    )
    fit(tmp_path, model, loader(gaussian_points(20, seed=0)), looped)
    return model, looped


def test_eight_runs_differing_only_in_seed_everything_give_eight_results(tmp_path: Path) -> None:
    finals = set()
    for seed in range(8):
        pl.seed_everything(seed)
        model, loop = _run(tmp_path / str(seed))
        assert loop.seed == seed and manifest(tmp_path / str(seed) / "synthetic")["config"]["seed"] == seed
        finals.add(tuple(model.log_std.detach().tolist()))
    assert len(finals) == 8


def test_without_seed_everything_a_fresh_seed_is_drawn_logged_recorded_and_repeats_bit_identically(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    os.environ.pop("PL_GLOBAL_SEED", None)
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        first, loop_a = _run(tmp_path / "a")
        second, loop_b = _run(tmp_path / "b")
    assert loop_a.seed != loop_b.seed  # two runs never share randomness by accident
    assert f"seed {loop_a.seed}, the run's seed drawn afresh" in caplog.text
    recorded = manifest(tmp_path / "a" / "synthetic")["config"]["seed"]
    assert recorded == loop_a.seed
    assert not torch.equal(first.log_std, second.log_std)
    again, _ = _run(tmp_path / "c", seed=recorded)  # the recorded seed repeats the run exactly
    assert torch.equal(again.mean, first.mean) and torch.equal(again.log_std, first.log_std)
    pl.seed_everything(recorded)  # and so does seed_everything with it
    once_more, _ = _run(tmp_path / "d")
    assert torch.equal(once_more.log_std, first.log_std)


def test_an_explicit_seed_keeps_its_meaning_whatever_the_run_seed(tmp_path: Path) -> None:
    pl.seed_everything(1)
    one, loop = _run(tmp_path / "a", seed=5)
    pl.seed_everything(2)
    two, _ = _run(tmp_path / "b", seed=5)
    assert loop.seed == 5 and torch.equal(one.log_std, two.log_std)


@pytest.mark.parametrize("value", [-1, 1.5, "3", True])
def test_a_bad_seed_is_refused_at_construction(value: Any) -> None:
    with pytest.raises(ValueError, match=r"`seed` must be None \(the run's seed\) or an integer >= 0"):
        SelfConsumingLoop(1.0, 2, seed=value)


def test_a_datamodule_with_seed_none_follows_the_run_seed_and_shares_a_drawn_one_with_the_loop(tmp_path: Path) -> None:
    def points(seed: int | None) -> torch.Tensor:
        data = GaussianDataModule(n=8, n_test=4, batch_size=8, seed=None)
        data.setup("fit")
        assert data.train_points is not None
        return data.train_points

    pl.seed_everything(3)
    three = points(None)
    pl.seed_everything(4)
    assert not torch.equal(three, points(None))
    pl.seed_everything(3)
    assert torch.equal(three, points(None))
    # in a fit without seed_everything the DataModule and the loop take the same drawn seed
    os.environ.pop("PL_GLOBAL_SEED", None)
    data = GaussianDataModule(n=20, n_test=4, batch_size=10)
    loop = SelfConsumingLoop(1.0, 1, images_per_generation=20, output_dir=tmp_path / "s")
    fit(tmp_path, GaussianModel(), data, loop)
    expected = GaussianDataModule(n=20, n_test=4, batch_size=10, seed=loop.seed)
    expected.setup("fit")
    assert data.train_points is not None and expected.train_points is not None
    assert torch.equal(data.train_points, expected.train_points)


@pytest.mark.parametrize("text", ["-3", "banana"])
def test_a_pl_global_seed_that_is_not_a_seed_is_refused(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sclc_lightning.seeding import run_seed

    monkeypatch.setenv("PL_GLOBAL_SEED", text)
    with pytest.raises(ValueError, match=f"PL_GLOBAL_SEED must be an integer .* got '{text}'"):
        run_seed(None)


def test_evaluation_draws_follow_the_run_seed_unless_given_their_own(tmp_path: Path) -> None:
    """An evaluation callback without a seed draws from the run's (so that error bars over seeds
    include the evaluation's noise); one given a seed keeps it; the feature classifier of FID-like
    metrics keeps seed 0 (the same instrument in every run)."""
    from sclc_lightning.callbacks import GenerationEvaluator

    class Spread(GenerationEvaluator):
        def __init__(self, seed: int | None = None) -> None:
            super().__init__(num_samples=8, every=1, batch_size=8, seed=seed)
            self.seeds: list[int] = []
            self.draws: list[torch.Tensor] = []

        def evaluate(self, trainer: Any, pl_module: Any, generation: int) -> dict[str, float]:
            self.seeds.append(self.draw_seed(trainer))
            self.draws.append(self.draw(trainer, pl_module, generation))
            return {"spread": float(self.draws[-1].std())}

    runs = {}
    for name, run_seed, own in (("a", 1, None), ("b", 2, None), ("c", 2, 5)):
        pl.seed_everything(run_seed)
        spread = Spread(own)
        model = GaussianModel()
        looped = SelfConsumingLoop(synthetic_fraction=1.0, generations=1, images_per_generation=20, mode="replace")
        fit(tmp_path / name, model, loader(gaussian_points(20, seed=0)), looped, callbacks=[spread])
        runs[name] = spread
    assert runs["a"].seeds == [1, 1] and runs["b"].seeds == [2, 2] and runs["c"].seeds == [5, 5]
    assert not torch.equal(runs["a"].draws[0], runs["b"].draws[0])
    assert runs["a"].classifier_seed == 0 and runs["c"].classifier_seed == 5


def test_the_text_motion_and_molecule_data_follow_the_run_seed_unless_given() -> None:
    """The bundled DataModules all take the run's seed by default (``seed=None``); one DataModule
    keeps the seed it took, so its grammar (drawn when first used) and its texts agree."""
    from sclc_lightning.datasets.molecules import ConformerDataModule
    from sclc_lightning.datasets.motion import MotionDataModule
    from sclc_lightning.datasets.text import GrammarTextDataModule
    from sclc_lightning.seeding import datamodule_seed

    for cls in (GrammarTextDataModule, MotionDataModule, ConformerDataModule):
        assert inspect.signature(cls).parameters["seed"].default is None, cls

    def texts(**kwargs: Any) -> torch.Tensor:
        data = GrammarTextDataModule(vocab=16, prompt_length=0, continuation_length=8, n=8, n_test=4, **kwargs)
        data.setup("fit")
        assert data.train_blocks is not None
        return data.train_blocks.tokens

    pl.seed_everything(1)
    first = texts()
    assert torch.equal(first, texts(seed=1))
    pl.seed_everything(2)
    assert not torch.equal(first, texts())
    os.environ.pop("PL_GLOBAL_SEED", None)  # a drawn seed: the grammar and the texts share it
    data = GrammarTextDataModule(vocab=16, prompt_length=0, continuation_length=8, n=8, n_test=4)
    grammar_seed = data.grammar.seed
    data.setup("fit")
    assert datamodule_seed(data) == grammar_seed


@pytest.mark.parametrize("resume_seed", [None, 6])
def test_a_resume_gives_the_datamodule_the_seed_the_run_started_with(tmp_path: Path, resume_seed: int | None) -> None:
    """A run whose seed was drawn (or given to seed_everything), resumed in a new Trainer without
    it (or with another): its DataModule with seed=None takes the run's seed from the checkpoint,
    before Lightning restores it, so the real data are the same and the resume finishes the run
    exactly as the uninterrupted one."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    def run(ckpt_path: str | None = None) -> tuple[GaussianModel, SelfConsumingLoop]:
        model = GaussianModel()
        looped = SelfConsumingLoop(
            synthetic_fraction=1.0, generations=2, mode="replace", output_dir=str(tmp_path / "out")
        )
        saving = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1, every_n_epochs=1)
        data = GaussianDataModule(n=20, batch_size=10)
        trainer = pl.Trainer(
            callbacks=[looped, saving],
            max_epochs=-1,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=str(tmp_path),
        )
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
        return model, looped

    if resume_seed is None:
        os.environ.pop("PL_GLOBAL_SEED", None)
    else:
        pl.seed_everything(5)
    whole, first = run()
    if resume_seed is None:
        os.environ.pop("PL_GLOBAL_SEED", None)
    else:
        pl.seed_everything(resume_seed)
    resumed, second = run(str(tmp_path / "ckpt" / "epoch=1.ckpt"))
    assert second.run_seed == first.run_seed
    assert torch.equal(resumed.log_std, whole.log_std) and torch.equal(resumed.mean, whole.mean)
