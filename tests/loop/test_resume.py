"""A crashed fit resumes exactly; a resume with other settings is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import (
    CrashAt,
    GaussianModel,
    fit,
    gaussian_points,
    loader,
    manifest,
)
from lightning.pytorch.callbacks import ModelCheckpoint

from sclc_lightning import SelfConsumingLoop


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
            "seed": 0,  # the runs compared share their seed
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
    # generation 3 was sampled after the checkpoint, which does not vouch for it: sampled again
    assert "generations [3] were sampled after the checkpoint" in caplog.text
    assert "generation 3 reuses its synthetic data on disk" not in caplog.text
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


def test_a_forged_generation_after_the_checkpoint_is_never_trained_on(tmp_path: Path) -> None:
    """A generation sampled after the checkpoint, replaced by other data whose digest is written
    into the manifest so that every file check passes: the resume samples it again instead."""
    import hashlib
    import json

    from safetensors.torch import load_file, save_file

    full, _ = _resumable_run(tmp_path / "a", "ck", {})
    with pytest.raises(RuntimeError, match="simulated crash"):
        _resumable_run(tmp_path / "b", "ck", {}, callbacks=[CrashAt(3)])
    synthetic = tmp_path / "b" / "synthetic"
    shard = synthetic / "gen_0003" / "shard_00000.safetensors"
    tensors = load_file(str(shard))
    genuine = tensors["data"].clone()
    tensors["data"] = torch.full_like(tensors["data"], 7.0)  # far from anything the model made
    save_file(tensors, str(shard))
    from sclc_lightning.store import SyntheticStore

    SyntheticStore(synthetic).compact()  # the record in manifest.json, where the forger edits it
    record = json.loads((synthetic / "manifest.json").read_text())
    record["generations"][-1]["shards"][0][2] = hashlib.sha256(shard.read_bytes()).hexdigest()
    (synthetic / "manifest.json").write_text(json.dumps(record))
    resumed, _ = _resumable_run(tmp_path / "b", "ck2", {}, ckpt_path=str(tmp_path / "b" / "ck" / "epoch=2.ckpt"))
    assert torch.equal(load_file(str(shard))["data"], genuine)  # sampled again, identically
    assert torch.equal(full.mean, resumed.mean) and torch.equal(full.log_std, resumed.log_std)


def _run_on(tmp_path: Path, points: torch.Tensor, ckpt_path: str | None = None, **loop: Any) -> Any:
    model = GaussianModel(noise=0.2)
    looped = SelfConsumingLoop(0.5, 3, images_per_generation=40, output_dir=tmp_path / "synthetic", **loop)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", every_n_epochs=1, save_top_k=-1, filename="{epoch}")
    fit(tmp_path, model, loader(points), looped, callbacks=[ckpt], enable_checkpointing=True, ckpt_path=ckpt_path)
    return looped


@pytest.mark.parametrize(
    ("other", "named"),
    [
        (gaussian_points(50, seed=4), "real_data.sha256"),  # another seed: same size, other content
        (gaussian_points(60, seed=3), "real_data.items: checkpoint 50 vs now 60"),
        (gaussian_points(50, seed=3) + 1.0, "real_data.sha256"),  # another mean
    ],
)
def test_a_resume_with_other_real_data_is_refused_unless_accepted(
    tmp_path: Path, other: torch.Tensor, named: str
) -> None:
    loop = _run_on(tmp_path, gaussian_points(50, seed=3))
    assert loop.fingerprint()["real_data"]["items"] == 50
    assert manifest(tmp_path / "synthetic")["config"]["real_data"] == loop.fingerprint()["real_data"]
    checkpoint = str(tmp_path / "ck" / "epoch=1.ckpt")
    from sclc_lightning.loop import ResumeRefused

    with pytest.raises(
        ResumeRefused, match=rf"{named}.*resume with the same data, or pass accept_other_real_data=True"
    ):
        _run_on(tmp_path, other, ckpt_path=checkpoint)
    with pytest.warns(UserWarning, match="resuming with other real data, as accepted"):
        _run_on(tmp_path, other, ckpt_path=checkpoint, accept_other_real_data=True)


def test_the_same_real_data_resumes_and_older_checkpoints_are_not_compared(tmp_path: Path) -> None:
    from sclc_lightning.loop.fingerprint import fingerprint_changes

    loop = _run_on(tmp_path, gaussian_points(50, seed=3))
    _run_on(tmp_path, gaussian_points(50, seed=3), ckpt_path=str(tmp_path / "ck" / "epoch=1.ckpt"))
    now = loop.fingerprint()
    before = {k: v for k, v in now.items() if k != "real_data"}  # what a format-2 checkpoint recorded
    assert fingerprint_changes(before, now, 2) == []
    assert fingerprint_changes(before, now, 3) == [f"real_data: checkpoint None vs now {now['real_data']!r}"]


def _write_schedule(folder: Path, factor: float) -> None:
    """``sched_user.schedule`` as a user writes it in a file of their own, imported afresh."""
    import importlib
    import sys

    (folder / "sched_user.py").write_text(f"def schedule(g):\n    return {factor} * g\n")
    sys.modules.pop("sched_user", None)
    importlib.invalidate_caches()


@pytest.fixture
def user_code(tmp_path: Path) -> Any:
    import sys

    folder = tmp_path / "code"
    folder.mkdir()
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop("sched_user", None)


def test_a_schedule_edited_since_the_checkpoint_is_refused_unless_accepted(tmp_path: Path, user_code: Path) -> None:
    # the finding: a schedule edited from 0.2 g to 0.1 g resumed and sampled other counts
    _write_schedule(user_code, 0.2)
    settings = {"synthetic_fraction": "sched_user:schedule", "generations": 3}
    with pytest.raises(RuntimeError, match="simulated crash"):
        _resumable_run(tmp_path, "ck", settings, callbacks=[CrashAt(2)])
    checkpoint = str(tmp_path / "ck" / "epoch=1.ckpt")
    _write_schedule(user_code, 0.1)
    with pytest.raises(
        ValueError, match=r"synthetic_fraction: checkpoint 'sched_user:schedule#code:[0-9a-f]{16}' vs"
    ) as err:
        _resumable_run(tmp_path, "ck2", settings, ckpt_path=checkpoint)
    assert "the code of `synthetic_fraction`, `schedule` was edited since the checkpoint" in str(err.value)
    assert "accept_edited_code=True" in str(err.value)
    # the same code resumes; the edited one when accepted on purpose, and it is what samples then
    _write_schedule(user_code, 0.2)
    _, same = _resumable_run(tmp_path, "ck3", settings, ckpt_path=checkpoint)
    _write_schedule(user_code, 0.1)
    _, edited = _resumable_run(tmp_path, "ck4", {**settings, "accept_edited_code": True}, ckpt_path=checkpoint)
    assert [r.num_synthetic for r in same.history] == [int(0.2 * g * 50) for g in (2, 3)]
    assert [r.num_synthetic for r in edited.history] == [int(0.1 * g * 50) for g in (2, 3)]


def test_a_registered_schedule_whose_values_changed_is_refused_unless_accepted(tmp_path: Path) -> None:
    """From a hostile try: a registered schedule is recorded by its name and settings, so its
    edit was resumed silently; the checkpoint now records the λ it gave each generation."""
    from sclc_lightning.mixing import schedule as schedules

    original = schedules._SCHEDULES.snapshot()

    def register(factor: float) -> None:
        schedules._SCHEDULES.restore(original)  # as a new process would: the edited code registered anew

        @schedules.register_schedule("test_ramp")
        def ramp(generation: int, generations: int, top: float = 1.0) -> float:
            return factor * top

    settings = {"synthetic_fraction": {"name": "test_ramp", "top": 1.0}, "generations": 3}
    try:
        register(0.5)
        with pytest.raises(RuntimeError, match="simulated crash"):
            _resumable_run(tmp_path, "ck", settings, callbacks=[CrashAt(2)])
        checkpoint = str(tmp_path / "ck" / "epoch=1.ckpt")
        register(1.0)
        with pytest.raises(ValueError, match=r"schedule: checkpoint \[0.5, 0.5, 0.5\] vs now \[1.0, 1.0, 1.0\]") as err:
            _resumable_run(tmp_path, "ck2", settings, ckpt_path=checkpoint)
        assert "accept_edited_code=True" in str(err.value)
        _, edited = _resumable_run(tmp_path, "ck3", {**settings, "accept_edited_code": True}, ckpt_path=checkpoint)
        assert [r.num_synthetic for r in edited.history] == [50, 50]
    finally:
        schedules._SCHEDULES.restore(original)


def test_a_checkpoint_without_code_identities_compares_callables_by_name(
    tmp_path: Path, user_code: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    _write_schedule(user_code, 0.2)
    settings = {"synthetic_fraction": "sched_user:schedule", "generations": 3}
    with pytest.raises(RuntimeError, match="simulated crash"):
        _resumable_run(tmp_path, "ck", settings, callbacks=[CrashAt(2)])
    path = tmp_path / "ck" / "epoch=1.ckpt"
    checkpoint = torch.load(path, weights_only=False)
    (key,) = [k for k in checkpoint["callbacks"] if "SelfConsumingLoop" in k]
    state = checkpoint["callbacks"][key]
    assert state["format"] == 5
    state["format"] = 3  # as the previous version wrote it: the callable by name
    state["fingerprint"]["synthetic_fraction"] = "sched_user:schedule"
    torch.save(checkpoint, path)
    _write_schedule(user_code, 0.1)  # an edit this checkpoint cannot show
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        _, loop = _resumable_run(tmp_path, "ck2", settings, ckpt_path=str(path))
    assert "names its callables without their code, so they are compared by name only" in caplog.text
    assert [r.generation for r in loop.history] == [2, 3]


def test_a_resume_with_nothing_left_to_train_leaves_the_run_unlocked(tmp_path: Path) -> None:
    """The fit ends before training starts (on_train_end never runs): it must unlock the folder,
    or the next fit in the same process, raising `generations` as the message says, is refused."""
    points = gaussian_points(50, seed=3)
    _run_on(tmp_path, points, seed=0)
    last = str(tmp_path / "ck" / "epoch=3.ckpt")
    _run_on(tmp_path, points, ckpt_path=last, seed=0)  # complete: nothing left to train
    assert not (tmp_path / "synthetic" / ".sclc.lock.json").exists()  # no holder left behind
    model = GaussianModel(noise=0.2)
    looped = SelfConsumingLoop(0.5, 4, images_per_generation=40, output_dir=tmp_path / "synthetic", seed=0)
    fit(tmp_path, model, loader(points), looped, ckpt_path=last)  # extended, in the same process
    assert [g["generation"] for g in manifest(tmp_path / "synthetic")["generations"]] == [1, 2, 3, 4]
