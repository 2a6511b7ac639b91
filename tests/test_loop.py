"""Behaviour of the SelfConsumingLoop callback in single-process fits."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from helpers import ConditionalGaussian, GaussianModel, TensorItems, gaussian_points, loader, trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, Dataset

from sclc_lightning import Corrector, IdentityCorrector, SelfConsumingLoop, SyntheticDataError


def fit(tmp_path: Path, model: pl.LightningModule, data: Any, loop: SelfConsumingLoop, **kwargs: Any) -> pl.Trainer:
    ckpt_path = kwargs.pop("ckpt_path", None)
    t = trainer(tmp_path, [loop, *kwargs.pop("callbacks", [])], **kwargs)
    t.fit(model, train_dataloaders=data, ckpt_path=ckpt_path)
    return t


def manifest(path: Path) -> dict[str, Any]:
    return json.loads((path / "manifest.json").read_text())


# -- counts, modes, budget -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "extra", "expected"),
    [
        ("augment", {}, [(53, 0), (53, 37), (53, 37), (53, 37)]),
        ("accumulate", {}, [(53, 0), (53, 37), (53, 74), (53, 111)]),
        ("accumulate", {"mode_kwargs": {"max_synthetic": 50}}, [(53, 0), (53, 37), (53, 50), (53, 50)]),
        ("replace", {}, [(53, 0), (0, 37), (0, 37), (0, 37)]),
        ("fresh", {"mode_kwargs": {"real_per_generation": 20}}, [(20, 0), (20, 14), (20, 14), (20, 14)]),
    ],
)
def test_modes_build_the_mixed_set(tmp_path: Path, mode: str, extra: dict[str, Any], expected: list[Any]) -> None:
    loop = SelfConsumingLoop(0.7, 3, images_per_generation=40, mode=mode, output_dir=tmp_path / "s", **extra)
    t = fit(tmp_path, GaussianModel(), loader(gaussian_points(53)), loop)
    assert [(r.num_real, r.num_synthetic) for r in loop.history] == expected
    counts = [g["count"] for g in manifest(tmp_path / "s")["generations"]]
    assert counts == [expected[1][1] if mode != "fresh" else 14] * 3  # floor(0.7 * n) every generation
    assert t.current_epoch == 4 and t.global_step == 4 * 4  # stopped by itself after generation 3


def test_fresh_mode_draws_new_real_subsets(tmp_path: Path) -> None:
    points = gaussian_points(40)
    model = GaussianModel(record=True)
    loop = SelfConsumingLoop(
        0.0,
        2,
        images_per_generation=10,
        mode="fresh",
        mode_kwargs={"real_per_generation": 10},
        output_dir=tmp_path / "s",
    )
    fit(tmp_path, model, loader(points), loop)
    seen = [set(map(tuple, torch.cat(model.seen[i : i + 1]).tolist())) for i in range(3)]
    assert all(len(s) == 10 for s in seen)  # one pass over each 10-point subset
    assert seen[0] != seen[1] and seen[1] != seen[2]


def test_synthetic_fraction_above_one(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(1.5, 1, images_per_generation=20, output_dir=tmp_path / "s")
    fit(tmp_path, GaussianModel(), loader(gaussian_points(31)), loop)
    assert loop.history[1].num_synthetic == 46  # floor(1.5 * 31)


def test_fixed_budget_and_synthetic_share(tmp_path: Path) -> None:
    real = gaussian_points(50)
    model = GaussianModel(record=True)
    # 50 real + 25 synthetic = 75 items; 150 samples = two whole passes.
    loop = SelfConsumingLoop(0.5, 2, images_per_generation=150, output_dir=tmp_path / "s")
    fit(tmp_path, model, loader(real, batch_size=10), loop)
    per_gen = 15
    real_rows = {tuple(r) for r in real.tolist()}
    for g in range(3):
        seen = torch.cat(model.seen[g * per_gen : (g + 1) * per_gen])
        assert seen.shape[0] == 150
        n_real = sum(tuple(r) in real_rows for r in seen.tolist())
        assert n_real == (150 if g == 0 else 100)  # share of synthetic seen = 25/75 exactly


def test_budget_rounds_to_whole_batches_with_warning(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 4, images_per_generation=35, output_dir=tmp_path / "s")
    with pytest.warns(UserWarning, match="35 training samples .* training on 30") as caught:
        fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    assert [r.num_trained for r in loop.history] == [30] * 5
    said = [w for w in caught if "not a whole number of batches" in str(w.message)]
    assert len(said) == 1 and "said once for every generation" in str(said[0].message)  # not 5 times


def test_one_pass_when_budget_is_none(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.4, 2, images_per_generation=None, output_dir=tmp_path / "s")
    t = fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    assert [r.num_trained for r in loop.history] == [50, 70, 70]
    assert t.global_step == 5 + 7 + 7


def test_initial_images_zero_skips_generation_zero(tmp_path: Path) -> None:
    model = GaussianModel()
    loop = SelfConsumingLoop(0.5, 2, images_per_generation=20, initial_images=0, output_dir=tmp_path / "s")
    t = fit(tmp_path, model, loader(gaussian_points(50)), loop)
    assert [r.generation for r in loop.history] == [1, 2]
    assert t.global_step == 4


def test_initial_images_sets_generation_zero_budget(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20, initial_images=100, output_dir=tmp_path / "s")
    t = fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    assert [r.num_trained for r in loop.history] == [100, 20] and t.global_step == 12


def test_a_generation_cut_short_by_max_steps_counts_what_it_trained(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 3, images_per_generation=80, output_dir=tmp_path / "s")
    with pytest.warns(UserWarning, match="max_steps=12"):
        t = fit(tmp_path, GaussianModel(), loader(gaussian_points(50), batch_size=10), loop, max_steps=12)
    # 8 batches of 10 in generation 0, then 4 of generation 1's 8 before max_steps ends the fit.
    assert [(r.generation, r.num_trained) for r in loop.history] == [(0, 80), (1, 40)] and t.global_step == 12


# -- one continuous fit ----------------------------------------------------------------------
def test_optimizer_and_scheduler_state_carry_over(tmp_path: Path) -> None:
    model = GaussianModel(scheduler=True)
    loop = SelfConsumingLoop(0.5, 3, images_per_generation=60, output_dir=tmp_path / "s")
    t = fit(tmp_path, model, loader(gaussian_points(50)), loop)
    steps = 4 * 6
    assert int(t.optimizers[0].state[model.mean]["step"]) == steps
    assert t.lr_scheduler_configs[0].scheduler.last_epoch == steps


def test_identity_corrector_equals_no_corrector(tmp_path: Path) -> None:
    weights = []
    for corrector in (None, IdentityCorrector(), "identity"):
        torch.manual_seed(0)
        model = GaussianModel(noise=0.1)
        loop = SelfConsumingLoop(
            0.8, 3, images_per_generation=40, corrector=corrector, output_dir=tmp_path / str(corrector)
        )
        fit(tmp_path, model, loader(gaussian_points(30)), loop)
        weights.append(torch.cat([model.mean.detach(), model.log_std.detach()]))
    assert torch.equal(weights[0], weights[1]) and torch.equal(weights[0], weights[2])


def test_correction_changes_the_data(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(
        0.5,
        1,
        images_per_generation=20,
        corrector="optimal_transport",
        corrector_kwargs={"strength": float("inf")},
        output_dir=tmp_path / "s",
    )
    real = gaussian_points(50)
    fit(tmp_path, GaussianModel(), loader(real), loop)
    record = manifest(tmp_path / "s")["generations"][0]
    assert record["corrector"] == "optimal_transport" and record["strength"] == float("inf")
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "s" / "gen_0001" / record["shards"][0][0]))
    # gamma = inf: every corrected point is a real point, each at most once.
    rows = {tuple(r) for r in real.tolist()}
    assert all(tuple(r) in rows for r in stored["data"].tolist())
    assert len({tuple(r) for r in stored["data"].tolist()}) == 25


def test_long_steps_report_their_duration(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20, corrector="optimal_transport", output_dir=tmp_path / "s")
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):  # other tests may quiet it
        fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    text = caplog.text
    for pattern in (
        r"sampled 25 points for generation 1 in \d+\.\d s",
        r"corrected generation 1 in \d+\.\d s",
        r"generation 1 trained on 20 samples from 50 real \+ 25 synthetic items in \d+\.\d s",
    ):
        assert re.search(pattern, text), pattern


def test_module_correct_method_is_used(tmp_path: Path) -> None:
    class Snapping(GaussianModel):
        def correct(self, batch: Any, *, generation: int, generator: Any, reference: Any) -> torch.Tensor:
            return torch.full_like(batch.data, float(generation))

    model = Snapping(record=True)
    loop = SelfConsumingLoop(0.5, 2, images_per_generation=None, output_dir=tmp_path / "s")
    fit(tmp_path, model, loader(gaussian_points(50)), loop)
    gen2 = torch.cat(model.seen[-8:])
    assert int((gen2 == 2.0).all(1).sum()) == 25  # one pass over 75 items: all 25 synthetic ones
    assert manifest(tmp_path / "s")["generations"][0]["corrector"] == "module:Snapping.correct"


# -- item structure and conditions -------------------------------------------------------------
def test_conditional_items_keep_structure_and_labels(tmp_path: Path) -> None:
    points = gaussian_points(60)
    labels = torch.arange(60) % 3
    data = loader(points + 10.0 * labels[:, None], labels=labels)
    model = ConditionalGaussian(lr=0.1)
    batches: list[Any] = []

    class Spy(Callback):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            batches.append((trainer.current_epoch, batch))

    loop = SelfConsumingLoop(0.5, 2, images_per_generation=90, condition_field=1, output_dir=tmp_path / "s")
    fit(tmp_path, model, data, loop, callbacks=[Spy()])
    last = [b for e, b in batches if e == 2]
    assert all(isinstance(b, list) and b[1].dtype == torch.int64 for b in last)
    xs, ys = torch.cat([b[0] for b in last]), torch.cat([b[1] for b in last])
    # every item, real or synthetic, sits near 10 * its label: conditions reached `sample`
    assert ((xs - 10.0 * ys[:, None]).mean(1).abs() < 7.0).all() and len(ys) == 90
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "s" / "gen_0002" / "shard_00000.safetensors"))
    assert torch.equal(stored["field.1"], labels[stored["source_index"]])  # labels of the source items
    assert ((stored["data"] - 10.0 * stored["field.1"][:, None]).mean(1).abs() < 7.0).all()


class DictItems(Dataset[dict[str, Any]]):
    def __init__(self, points: torch.Tensor):
        self.points = points

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"x": self.points[i], "name": f"item{i}", "weight": 1.5}


def test_dict_items_with_strings_round_trip(tmp_path: Path) -> None:
    seen: list[Any] = []

    class Spy(Callback):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            seen.append(batch)

    copied = {"name": "copy", "weight": "copy"}  # the model is unconditional: the fields are copied
    loop = SelfConsumingLoop(1.0, 1, images_per_generation=40, mode="replace", output_dir=tmp_path / "s", fields=copied)
    fit(tmp_path, GaussianModel(), DataLoader(DictItems(gaussian_points(20)), batch_size=10), loop, callbacks=[Spy()])
    last = seen[-1]
    assert set(last) == {"x", "name", "weight"}
    assert last["weight"].dtype == torch.float64 and all(n.startswith("item") for n in last["name"])


# -- logging -----------------------------------------------------------------------------------
def test_per_generation_metrics_reach_the_logger(tmp_path: Path) -> None:
    logger = CSVLogger(str(tmp_path), name="logs", version=0)
    loop = SelfConsumingLoop(0.5, 2, images_per_generation=20, corrector="random_pairing", output_dir=tmp_path / "s")
    fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop, logger=logger, log_every_n_steps=1)
    import csv

    rows = [r for r in csv.DictReader(open(tmp_path / "logs" / "version_0" / "metrics.csv")) if r.get("generation")]
    assert [float(r["generation"]) for r in rows] == [0.0, 1.0, 2.0]
    assert [float(r["num_synthetic"]) for r in rows] == [0.0, 25.0, 25.0]
    assert [float(r["num_real"]) for r in rows] == [50.0] * 3
    assert all(float(r["time_training_s"]) > 0 for r in rows)
    assert float(rows[1]["time_sampling_s"]) > 0 and float(rows[1]["time_correcting_s"]) > 0


# -- resume ------------------------------------------------------------------------------------
class CrashAt(Callback):
    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def _resumable_run(
    tmp_path: Path, name: str, loop_kwargs: dict[str, Any], scheduler: bool | str = True, **fit_kwargs: Any
) -> tuple[Any, Any]:
    torch.manual_seed(0)
    model = GaussianModel(scheduler=scheduler, noise=0.2)
    loop = SelfConsumingLoop(
        **{
            "synthetic_fraction": 0.5,
            "generations": 4,
            "images_per_generation": 40,
            "corrector": "optimal_transport",
            "output_dir": tmp_path / "synthetic",
            **loop_kwargs,
        }
    )
    ckpt = ModelCheckpoint(dirpath=tmp_path / name, every_n_epochs=1, save_top_k=-1, filename="{epoch}")
    callbacks = [ckpt, *fit_kwargs.pop("callbacks", [])]
    torch.manual_seed(1234 if "ckpt_path" in fit_kwargs else 0)  # history must not matter
    fit(
        tmp_path,
        model,
        loader(gaussian_points(50, seed=3)),
        loop,
        callbacks=callbacks,
        enable_checkpointing=True,
        **fit_kwargs,
    )
    return model, loop


@pytest.mark.parametrize("scheduler", ["step", "epoch"])
def test_crash_then_resume_equals_uninterrupted(
    tmp_path: Path, scheduler: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    full, _ = _resumable_run(tmp_path / "a", "ck", {}, scheduler)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _resumable_run(tmp_path / "b", "ck", {}, scheduler, callbacks=[CrashAt(3)])
    on_disk = manifest(tmp_path / "b" / "synthetic")["generations"]
    assert [g["generation"] for g in on_disk] == [1, 2, 3]  # generation 3's data was made before the crash
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        resumed, loop = _resumable_run(
            tmp_path / "b", "ck2", {}, scheduler, ckpt_path=str(tmp_path / "b" / "ck" / "epoch=2.ckpt")
        )
    assert "generation 3 reuses its synthetic data on disk" in caplog.text  # same model state, same settings
    assert [r.generation for r in loop.history] == [3, 4]
    assert torch.equal(full.mean, resumed.mean) and torch.equal(full.log_std, resumed.log_std)
    a = manifest(tmp_path / "a" / "synthetic")["generations"]
    b = manifest(tmp_path / "b" / "synthetic")["generations"]
    assert [g["sampled_at_step"] for g in a] == [g["sampled_at_step"] for g in b]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"synthetic_fraction": 0.25}, "synthetic_fraction: checkpoint 0.5 vs now 0.25"),
        ({"mode": "accumulate"}, "mode: checkpoint 'augment' vs now 'accumulate'"),
        ({"corrector": "kmeans"}, "corrector: checkpoint"),
    ],
)
def test_resume_with_changed_settings_is_refused(tmp_path: Path, change: dict[str, Any], match: str) -> None:
    _resumable_run(tmp_path, "ck", {"generations": 1})
    with pytest.raises(ValueError, match=match):
        _resumable_run(tmp_path, "ck2", change, ckpt_path=str(tmp_path / "ck" / "epoch=0.ckpt"))


@pytest.mark.parametrize(
    ("first", "then", "match"),
    [
        (
            {"corrector": "kmeans", "corrector_kwargs": {"num_clusters": 4, "strength": 1.0}},
            {"corrector": "kmeans", "corrector_kwargs": {"num_clusters": 8, "strength": 1.0}},
            r"changed settings \(corrector.num_clusters: checkpoint 4 vs now 8\)",
        ),
        (
            {"mode": "accumulate", "mode_kwargs": {"max_synthetic": 30}},
            {"mode": "accumulate", "mode_kwargs": {"max_synthetic": 10}},
            r"changed settings \(mode_settings.max_synthetic: checkpoint 30 vs now 10\)",
        ),
    ],
)
def test_resume_with_changed_corrector_or_mode_settings_is_refused(
    tmp_path: Path, first: dict[str, Any], then: dict[str, Any], match: str
) -> None:
    _resumable_run(tmp_path, "ck", {"generations": 1, **first})
    with pytest.raises(ValueError, match=match):
        _resumable_run(tmp_path, "ck2", {"generations": 2, **then}, ckpt_path=str(tmp_path / "ck" / "epoch=0.ckpt"))
    # the same settings resume
    _, loop = _resumable_run(
        tmp_path, "ck3", {"generations": 2, **first}, ckpt_path=str(tmp_path / "ck" / "epoch=0.ckpt")
    )
    assert [r.generation for r in loop.history] == [1, 2]


def test_resume_with_changed_items_is_refused(tmp_path: Path) -> None:
    _resumable_run(tmp_path, "ck", {"generations": 1})
    # the same points, now carrying a label field: the stored synthetic items no longer fit
    labelled = loader(gaussian_points(50, seed=3), labels=torch.zeros(50, dtype=torch.int64))
    loop = SelfConsumingLoop(
        0.5,
        2,
        images_per_generation=40,
        corrector="optimal_transport",
        output_dir=tmp_path / "synthetic",
        fields={1: "copy"},
    )
    with pytest.raises(ValueError, match=r"changed settings \(item.container: checkpoint 'tensor' vs now 'tuple'"):
        fit(tmp_path, GaussianModel(), labelled, loop, ckpt_path=str(tmp_path / "ck" / "epoch=0.ckpt"))


def test_checkpoint_of_state_format_1_resumes(tmp_path: Path) -> None:
    full, _ = _resumable_run(tmp_path / "a", "ck", {})
    with pytest.raises(RuntimeError, match="simulated crash"):
        _resumable_run(tmp_path / "b", "ck", {}, callbacks=[CrashAt(3)])
    path = tmp_path / "b" / "ck" / "epoch=2.ckpt"
    checkpoint = torch.load(path, weights_only=False)
    (key,) = [k for k in checkpoint["callbacks"] if "SelfConsumingLoop" in k]
    state = checkpoint["callbacks"][key]
    # what the previous version wrote: name and strength of the corrector, mode settings on top
    state["format"] = 1
    state["fingerprint"] = {
        "synthetic_fraction": 0.5,
        "mode": "augment",
        "corrector": {"name": "optimal_transport", "strength": 1.0},
        "seed": 0,
        "real_per_generation": None,
        "max_synthetic": None,
    }
    torch.save(checkpoint, path)
    resumed, loop = _resumable_run(tmp_path / "b", "ck2", {}, ckpt_path=str(path))
    assert [r.generation for r in loop.history] == [3, 4]
    assert torch.equal(full.mean, resumed.mean) and torch.equal(full.log_std, resumed.log_std)


def test_existing_output_dir_of_another_run_is_refused(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20, output_dir=tmp_path / "s")
    fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    again = SelfConsumingLoop(0.5, 1, images_per_generation=20, output_dir=tmp_path / "s")
    with pytest.raises(ValueError, match="already holds the synthetic data of run"):
        fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), again)


# -- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"synthetic_fraction": -0.5}, r"`synthetic_fraction` must be a finite number >= 0, got -0.5"),
        ({"synthetic_fraction": float("nan")}, r"`synthetic_fraction` must be a finite number >= 0, got nan"),
        ({"synthetic_fraction": float("inf")}, r"`synthetic_fraction` must be a finite number >= 0, got inf"),
        ({"generations": -1}, r"`generations` must be an integer >= 0, got -1"),
        ({"mode": "mix"}, r"`mode` must be one of .*, got 'mix'"),
        ({"corrector": "nope"}, r"`corrector` must be one of .*, got 'nope'"),
        ({"mode": "fresh"}, r"`real_per_generation` is required in mode 'fresh', got None"),
        ({"real_per_generation": 5}, r"`real_per_generation` is only used in mode 'fresh', got 5"),
        ({"images_per_generation": 0}, r"`images_per_generation` must be None or an integer >= 1, got 0"),
        ({"initial_images": -3}, r"`initial_images` must be None or an integer >= 0, got -3"),
        ({"max_synthetic": 5}, r"`max_synthetic` is only used in mode 'accumulate', got 5"),
        ({"mode": "replace", "synthetic_fraction": 0.0}, r"`synthetic_fraction` must be > 0 in mode 'replace'"),
        ({"corrector": IdentityCorrector(), "corrector_kwargs": {"strength": 1}}, r"`corrector_kwargs` is only used"),
        ({"seed": -1}, r"`seed` must be an integer >= 0, got -1"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], match: str) -> None:
    args = {"synthetic_fraction": 0.5, "generations": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        SelfConsumingLoop(**args)


def test_model_without_sample_is_refused(tmp_path: Path) -> None:
    class NoSample(GaussianModel):
        sample = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match=r"NoSample has no method `sample`.*`sampler='generate'`"):
        fit(tmp_path, NoSample(), loader(gaussian_points(10)), SelfConsumingLoop(0.5, 1))


def test_empty_real_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="real training set is empty"):
        empty = DataLoader(TensorItems(torch.empty(0, 2)), batch_size=10)
        fit(tmp_path, GaussianModel(), empty, SelfConsumingLoop(0.5, 1, output_dir=tmp_path / "s"))


def test_fresh_pool_smaller_than_subset_is_refused(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 1, mode="fresh", mode_kwargs={"real_per_generation": 20}, output_dir=tmp_path / "s")
    with pytest.raises(
        ValueError, match=r"`real_per_generation` must be at most the size of the real pool \(10\), got 20"
    ):
        fit(tmp_path, GaussianModel(), loader(gaussian_points(10)), loop)


class BadSampler(GaussianModel):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def sample(self, num_samples: int, *, generator: Any = None, conditions: Any = None) -> torch.Tensor:
        out = super().sample(num_samples, generator=generator)
        if self.trainer.current_epoch < 2:
            return out
        return {
            "count": out[:-1],
            "shape": out[:, :1],
            "dtype": out.double(),
            "nan": torch.where(torch.arange(num_samples)[:, None] == 3, float("nan"), out),
        }[self.kind]


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("count", r"generation 2, BadSampler.sample returned shape \(24, 2\), expected \(25, 2\)"),
        ("shape", r"generation 2, BadSampler.sample returned shape \(25, 1\), expected \(25, 2\)"),
        ("dtype", r"generation 2, BadSampler.sample returned dtype torch.float64, the real data is torch.float32"),
        ("nan", r"generation 2, BadSampler.sample returned 1 points with non-finite values"),
    ],
)
def test_bad_model_output_stops_the_run_and_keeps_disk_intact(tmp_path: Path, kind: str, match: str) -> None:
    loop = SelfConsumingLoop(0.5, 3, images_per_generation=20, output_dir=tmp_path / "s")
    with pytest.raises(SyntheticDataError, match=match):
        fit(tmp_path, BadSampler(kind), loader(gaussian_points(50)), loop)
    assert [g["generation"] for g in manifest(tmp_path / "s")["generations"]] == [1]
    # nothing half-written is left; the released lock file of the fit stays (an OS lock lives on it)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        ".sclc.lock",
        "gen_0001",
        "history.json",
        "manifest.json",
    ]


def test_bad_corrector_output_names_the_corrector(tmp_path: Path) -> None:
    class Broken(Corrector):
        name = "broken"

        def correct(self, batch: Any, *, generation: int, generator: Any, reference: Any) -> torch.Tensor:
            return batch.data if generation < 2 else batch.data * float("inf")

    loop = SelfConsumingLoop(0.5, 3, images_per_generation=20, corrector=Broken(), output_dir=tmp_path / "s")
    with pytest.raises(SyntheticDataError, match=r"generation 2, corrector broken \(strength 1.0\) returned 25 points"):
        fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    assert [g["generation"] for g in manifest(tmp_path / "s")["generations"]] == [1]


def test_limit_train_batches_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"`Trainer\(limit_train_batches=...\)` must be 1.0, got 0.5"):
        fit(tmp_path, GaussianModel(), loader(gaussian_points(10)), SelfConsumingLoop(0.5, 1), limit_train_batches=0.5)


def test_trainer_settings_are_restored(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20, output_dir=tmp_path / "s")
    t = fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    assert t.reload_dataloaders_every_n_epochs == 0 and t.fit_loop.max_epochs == -1


# -- the user's loader settings and schedulers ----------------------------------------------------
def _collate_with_flag(items: list[torch.Tensor]) -> dict[str, Any]:
    return {"x": torch.stack(items), "collated_by_user": True}


def test_collate_and_workers_come_from_the_user_loader(tmp_path: Path) -> None:
    seen: list[Any] = []

    class Spy(Callback):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            seen.append(batch)

    data = DataLoader(
        TensorItems(gaussian_points(40)),
        batch_size=8,
        collate_fn=_collate_with_flag,
        num_workers=1,
        multiprocessing_context="spawn",
    )
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=32, output_dir=tmp_path / "s")
    fit(tmp_path, GaussianModel(), data, loop, callbacks=[Spy()])
    assert len(seen) == 8 and all(b["collated_by_user"] is True and b["x"].shape == (8, 2) for b in seen)


@pytest.mark.parametrize("initial_images", [None, 0])
def test_estimated_stepping_batches_matches_the_run(tmp_path: Path, initial_images: int | None) -> None:
    class OneCycle(GaussianModel):
        def configure_optimizers(self) -> Any:
            opt = torch.optim.SGD(self.parameters(), lr=0.01)
            total = self.trainer.estimated_stepping_batches
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=int(total))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    model = OneCycle()
    loop = SelfConsumingLoop(0.5, 3, images_per_generation=30, initial_images=initial_images, output_dir=tmp_path / "s")
    t = fit(tmp_path, model, loader(gaussian_points(50)), loop)  # OneCycleLR raises if stepped past total_steps
    steps = 3 * (4 if initial_images is None else 3)
    assert t.global_step == steps and t.lr_scheduler_configs[0].scheduler.total_steps == steps


def test_corrector_returning_the_wrong_count_is_refused(tmp_path: Path) -> None:
    class Dropper(Corrector):
        name = "dropper"

        def correct(self, batch: Any, *, generation: int, generator: Any, reference: Any) -> torch.Tensor:
            return batch.data[:-2]

    # the dry run finds it before generation 0 trains, before anything is written
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20, corrector=Dropper(), output_dir=tmp_path / "s")
    with pytest.raises(
        SyntheticDataError,
        match=r"Dry run before generation 0 .*, corrector dropper .* returned shape \(0, 2\), expected \(2, 2\)",
    ):
        fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    assert not (tmp_path / "s").exists()
    # without it, at generation 1, where it is refused before being stored
    loop = SelfConsumingLoop(
        1, 1, images_per_generation=20, corrector=Dropper(), output_dir=tmp_path / "t", dry_run=False
    )
    with pytest.raises(
        SyntheticDataError, match=r"generation 1, corrector dropper .* returned shape \(48, 2\), expected \(50, 2\)"
    ):
        fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    assert manifest(tmp_path / "t")["generations"] == [] and not (tmp_path / "t" / "gen_0001").exists()


class PointsDataModule(pl.LightningDataModule):
    def __init__(self, n: int):
        super().__init__()
        self.n = n
        self.setup_calls = 0

    def setup(self, stage: str) -> None:
        self.setup_calls += 1
        self.points = gaussian_points(self.n)

    def train_dataloader(self) -> DataLoader[Any]:
        return loader(self.points, batch_size=5)


def test_real_set_from_a_datamodule(tmp_path: Path) -> None:
    datamodule = PointsDataModule(33)
    loop = SelfConsumingLoop(0.5, 2, images_per_generation=20, output_dir=tmp_path / "s")
    t = trainer(tmp_path, [loop])
    t.fit(GaussianModel(), datamodule=datamodule)
    assert loop.n == 33 and [r.num_synthetic for r in loop.history] == [0, 16, 16]
    assert t.global_step == 3 * 4  # batch size 5 from the user's loader


def test_real_set_from_the_module_train_dataloader(tmp_path: Path) -> None:
    class WithLoader(GaussianModel):
        def train_dataloader(self) -> DataLoader[Any]:
            return loader(gaussian_points(21), batch_size=7)

    loop = SelfConsumingLoop(1.0, 1, images_per_generation=None, output_dir=tmp_path / "s")
    t = trainer(tmp_path, [loop])
    t.fit(WithLoader())
    assert [r.num_real + r.num_synthetic for r in loop.history] == [21, 42] and t.global_step == 3 + 6


def test_condition_field_needs_a_conditions_argument(tmp_path: Path) -> None:
    class Unconditional(GaussianModel):
        def sample(self, num_samples: int, *, generator: Any = None) -> torch.Tensor:  # type: ignore[override]
            return super().sample(num_samples, generator=generator)

    data = loader(gaussian_points(10), labels=torch.zeros(10, dtype=torch.int64))
    loop = SelfConsumingLoop(0.5, 1, condition_field=1, output_dir=tmp_path / "s")
    with pytest.raises(TypeError, match=r"`condition_field` is 1, so the loop passes `conditions=` to Unconditional"):
        fit(tmp_path, Unconditional(), data, loop)


def test_one_callback_serves_two_fits(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20)
    fit(tmp_path / "a", GaussianModel(), loader(gaussian_points(50)), loop)
    fit(tmp_path / "b", GaussianModel(), loader(gaussian_points(30)), loop)
    assert [r.num_real for r in loop.history] == [50, 50, 30, 30]
    assert (tmp_path / "b" / "synthetic" / "manifest.json").exists()  # default output_dir under the new root


class PrecisionRecorder(GaussianModel):
    """Records whether bf16 autocast is on when the loop samples."""

    def __init__(self, half: bool = False) -> None:
        super().__init__()
        self.autocast: list[bool] = []
        self.half = half

    def sample(self, num_samples: int, *, generator: Any = None, conditions: Any = None) -> torch.Tensor:
        on = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        self.autocast.append(on)
        out = super().sample(num_samples, generator=generator)
        return out.bfloat16() if self.half else out  # what a network returns under autocast


@pytest.mark.parametrize(("precision", "autocast"), [("bf16-mixed", True), ("32-true", False)])
def test_sampling_runs_under_the_trainer_precision(tmp_path: Path, precision: str, autocast: bool) -> None:
    model = PrecisionRecorder()
    loop = SelfConsumingLoop(0.5, 2, images_per_generation=20, output_dir=tmp_path / "s")
    fit(tmp_path, model, loader(gaussian_points(50)), loop, precision=precision)
    assert model.autocast == [autocast] * 3  # the dry run, generations 1 and 2, as predict_step would run
    assert [r.num_synthetic for r in loop.history] == [0, 25, 25]


def test_half_precision_samples_are_upcast_only_under_mixed_precision(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20, output_dir=tmp_path / "mixed")
    fit(tmp_path, PrecisionRecorder(half=True), loader(gaussian_points(50)), loop, precision="bf16-mixed")
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "mixed" / "gen_0001" / "shard_00000.safetensors"))["data"]
    assert stored.dtype == torch.float32 and stored.shape == (25, 2)
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20, output_dir=tmp_path / "full")
    with pytest.raises(SyntheticDataError, match=r"returned dtype torch\.bfloat16, the real data is torch\.float32"):
        fit(tmp_path, PrecisionRecorder(half=True), loader(gaussian_points(50)), loop, precision="32-true")


@pytest.mark.parametrize("bar", ["tqdm", "rich"])
def test_progress_bar_names_the_generation(tmp_path: Path, capsys: pytest.CaptureFixture[str], bar: str) -> None:
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    loop = SelfConsumingLoop(0.5, 2, images_per_generation=20, initial_images=0, output_dir=tmp_path / "s")
    progress = TQDMProgressBar() if bar == "tqdm" else RichProgressBar()
    fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop, enable_progress_bar=True, callbacks=[progress])
    shown = capsys.readouterr()
    bars = shown.out + shown.err
    # epochs 0 and 1 train generations 1 and 2 (off a terminal, Rich prints only its last state)
    assert "Generation 2/2" in bars
    assert "Generation 1/2" in bars if bar == "tqdm" else "Epoch 1" not in bars


def test_nan_in_the_real_data_is_refused_at_set_up(tmp_path: Path) -> None:
    points = gaussian_points(50)
    points[7, 1] = float("nan")
    points[30, 0] = float("inf")
    model = GaussianModel(record=True)
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=20, output_dir=tmp_path / "s")
    with pytest.raises(
        ValueError,
        match=r"holds NaN or infinite values: 2 of its 50 items \(TensorItems\), the first at index 7",
    ):
        fit(tmp_path, model, loader(points), loop)
    assert model.seen == []  # refused before training, not blamed on the model later


def test_a_max_epochs_the_loop_replaces_is_named(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 4, images_per_generation=30, output_dir=tmp_path / "s")
    with pytest.warns(
        UserWarning, match=r"`Trainer\(max_epochs=3\)` is replaced by the loop: .* 5 epochs for generations 0\.\.4"
    ):
        fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop, max_epochs=3)
    assert len(loop.history) == 5


def test_the_synthetic_folder_is_known_after_a_fit(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=30)
    assert loop.output_dir is None  # the default folder is decided when fitting starts
    fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    assert loop.output_dir is not None and (loop.output_dir / "manifest.json").is_file()


def test_the_loop_settings_reach_the_loggers_hyperparameters(tmp_path: Path) -> None:
    import yaml
    from lightning.pytorch.loggers import CSVLogger

    loop = SelfConsumingLoop(0.5, 1, images_per_generation=30, mode="accumulate", output_dir=tmp_path / "s")
    fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop, logger=CSVLogger(str(tmp_path / "logs")))
    hparams = yaml.safe_load(next((tmp_path / "logs").rglob("hparams.yaml")).read_text())
    assert hparams["sclc/synthetic_fraction"] == 0.5 and hparams["sclc/mode"] == "accumulate"
    assert hparams["sclc/generations"] == 1 and hparams["sclc/images_per_generation"] == 30
    assert hparams["sclc/corrector"] is None and hparams["sclc/start_from"] == "previous"


def test_early_stopping_is_said_to_end_the_whole_run(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import EarlyStopping

    loop = SelfConsumingLoop(0.5, 3, images_per_generation=30, output_dir=tmp_path / "s")
    stopper = EarlyStopping(monitor="absent", strict=False, check_on_train_epoch_end=True)
    with pytest.warns(UserWarning, match=r"EarlyStopping\(monitor='absent'\) stops the whole self-consuming run"):
        fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop, callbacks=[stopper])


class OneCycleGaussian(GaussianModel):
    """Sizes OneCycleLR from ``trainer.estimated_stepping_batches``, as Lightning's docs show:
    the scheduler raises if the fit steps it more often than that."""

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.01)
        self.planned = self.trainer.estimated_stepping_batches
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=int(self.planned))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@pytest.mark.parametrize(
    ("budgets", "mode", "accumulate"),
    [
        ({"initial_images": 170, "images_per_generation": 80}, "augment", 1),  # 17 batches, then 8
        ({"initial_images": 40, "images_per_generation": 120}, "augment", 2),  # later generations longer
        ({"images_per_generation": None}, "accumulate", 1),  # one pass over a set that grows
    ],
)
def test_estimated_stepping_batches_counts_every_generation(
    tmp_path: Path, budgets: dict[str, Any], mode: str, accumulate: int
) -> None:
    model = OneCycleGaussian()
    loop = SelfConsumingLoop(0.5, 3, mode=mode, output_dir=tmp_path / "s", **budgets)
    t = fit(tmp_path, model, loader(gaussian_points(50), batch_size=10), loop, accumulate_grad_batches=accumulate)
    assert len(loop.history) == 4
    assert model.planned == t.global_step  # the schedule ends with the fit, neither before nor after
    assert t.max_steps == -1  # the user's setting, given back


def test_estimated_stepping_batches_respects_the_users_max_steps(tmp_path: Path) -> None:
    model = OneCycleGaussian()
    loop = SelfConsumingLoop(0.5, 3, images_per_generation=80, output_dir=tmp_path / "s")
    with pytest.warns(UserWarning, match="max_steps=10"):
        t = fit(tmp_path, model, loader(gaussian_points(50), batch_size=10), loop, max_steps=10)
    assert model.planned == 10 == t.global_step and t.max_steps == 10


def test_the_history_is_written_beside_the_synthetic_data(tmp_path: Path) -> None:
    from sclc_lightning.loop.records import read_history

    loop = SelfConsumingLoop(0.5, 2, images_per_generation=30, output_dir=tmp_path / "s")
    fit(tmp_path, GaussianModel(), loader(gaussian_points(50)), loop)
    assert read_history(tmp_path / "s") == loop.history and len(loop.history) == 3
    # Another process's loop on that folder (the parent of ddp_spawn, a notebook) reads it there.
    assert SelfConsumingLoop(0.5, 2, images_per_generation=30, output_dir=tmp_path / "s").history == loop.history
    (tmp_path / "s" / "history.json").write_text("[{")
    with pytest.raises(ValueError, match=r"history\.json is not a generation history written by the loop"):
        read_history(tmp_path / "s")
