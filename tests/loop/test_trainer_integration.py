"""The user's loader settings, schedulers, precision, progress bars and Trainer settings."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from helpers import GaussianModel, TensorItems, fit, gaussian_points, loader, manifest, trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from sclc_lightning import Corrector, SelfConsumingLoop, SyntheticDataError


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
    lines = (tmp_path / "s" / "history.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "s" / "history.jsonl").write_text("".join(lines) + lines[-1][:20])  # cut short by a crash
    assert read_history(tmp_path / "s") == loop.history
    (tmp_path / "s" / "history.jsonl").write_text(lines[0] + "[{\n")
    with pytest.raises(ValueError, match=r"history\.jsonl: line 2 is not a record written by the loop"):
        read_history(tmp_path / "s")
    (tmp_path / "s" / "history.jsonl").unlink()  # a run of an earlier version: history.json, a list
    (tmp_path / "s" / "history.json").write_text(json.dumps([dataclasses.asdict(r) for r in loop.history]))
    assert read_history(tmp_path / "s") == loop.history


def test_a_tensor_dataset_is_scanned_whole_with_the_same_digest_and_checks() -> None:
    from torch.utils.data import DataLoader

    from sclc_lightning.items.codec import ItemCodec
    from sclc_lightning.items.real import RealData
    from sclc_lightning.loop.real_source import scan_real_data

    points = gaussian_points(1100)  # more than two of the general path's batches of 512
    as_tensor = RealData(points, ItemCodec.infer(points[0]))
    as_items = RealData(TensorItems(points), ItemCodec.infer(points[0]))  # read item by item
    assert scan_real_data(as_tensor, DataLoader(points)) == scan_real_data(as_items, DataLoader(points))
    points[900, 1] = float("nan")
    with pytest.raises(ValueError, match=r"1 of its 1100 items \(Tensor\), the first at index 900"):
        scan_real_data(RealData(points, ItemCodec.infer(points[0])), DataLoader(points))
