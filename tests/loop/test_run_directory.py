"""The loop locks its run directory, checks it on resume, and starts over what nothing can resume."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import CrashAt, GaussianModel, gaussian_points, loader, trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.store import RunDirectoryError, RunDirectoryLocked, RunLock


def _fit(root: Path, *, ckpt_path: str | None = None, crash: Callback | None = None, checkpoints: bool = True) -> Any:
    torch.manual_seed(0)
    model = GaussianModel(noise=0.2)
    loop = SelfConsumingLoop(
        0.5, 3, images_per_generation=20, mode="accumulate", corrector="optimal_transport", output_dir=root / "s"
    )
    callbacks: list[Any] = [loop, *([crash] if crash else [])]
    if checkpoints:
        callbacks.append(ModelCheckpoint(dirpath=root / "ck", every_n_epochs=1, save_top_k=-1, filename="{epoch}"))
    t = trainer(root, callbacks, enable_checkpointing=checkpoints)
    t.fit(model, train_dataloaders=loader(gaussian_points(40, seed=3)), ckpt_path=ckpt_path)
    return model


def _crashed_run(root: Path) -> str:
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(root, crash=CrashAt(3))
    return str(root / "ck" / "epoch=2.ckpt")


def _manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / "s" / "manifest.json").read_text())


def test_resume_refuses_a_deleted_manifest(tmp_path: Path) -> None:
    ckpt = _crashed_run(tmp_path)
    (tmp_path / "s" / "manifest.json").unlink()
    with pytest.raises(RunDirectoryError, match=r"manifest\.json is missing, but the checkpoint being resumed belongs"):
        _fit(tmp_path, ckpt_path=ckpt)
    assert not (tmp_path / "s" / "manifest.json").exists()  # never a fresh start over the run's data


def test_resume_refuses_a_dropped_record(tmp_path: Path) -> None:
    ckpt = _crashed_run(tmp_path)
    payload = _manifest(tmp_path)
    payload["generations"] = [r for r in payload["generations"] if r["generation"] != 1]
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(payload))
    with pytest.raises(RunDirectoryError, match=r"has no record of generation 1, which the checkpoint expects"):
        _fit(tmp_path, ckpt_path=ckpt)


def test_resume_refuses_a_damaged_shard_before_training(tmp_path: Path) -> None:
    ckpt = _crashed_run(tmp_path)
    path = tmp_path / "s" / "gen_0001" / "shard_00000.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    before = sorted(p.name for p in (tmp_path / "ck").iterdir())
    with pytest.raises(RunDirectoryError, match=r"gen_0001/shard_00000\.safetensors has SHA-256"):
        _fit(tmp_path, ckpt_path=ckpt)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == before  # stopped before training


def test_resume_after_undamaged_crash_is_identical(tmp_path: Path) -> None:
    full = _fit(tmp_path / "a")
    resumed = _fit(tmp_path / "b", ckpt_path=_crashed_run(tmp_path / "b"))
    assert torch.equal(full.mean, resumed.mean) and torch.equal(full.log_std, resumed.log_std)


def test_a_second_fit_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    holder = RunLock(tmp_path / "s").acquire("run-of-another-fit")
    try:
        with pytest.raises(
            RunDirectoryLocked, match=rf"in use by another fit \(host .*, pid {os.getpid()}, run_id run-of"
        ):
            _fit(tmp_path)
    finally:
        holder.release()
    _fit(tmp_path)  # free again
    assert _manifest(tmp_path)["finished"] is True


def test_rerun_after_a_crash_before_the_first_checkpoint_starts_over(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(tmp_path, crash=CrashAt(0, where="batch"), checkpoints=False)
    crashed = _manifest(tmp_path)
    assert crashed["checkpointed"] is False and crashed["finished"] is False
    (tmp_path / "s" / ".gen_0001.tmp-leftover").mkdir()
    with pytest.warns(UserWarning, match=r"stopped before its first checkpoint and cannot be resumed; starting over"):
        model = _fit(tmp_path, checkpoints=False)
    again = _manifest(tmp_path)
    assert again["run_id"] != crashed["run_id"] and again["finished"] is True and model is not None
    assert not (tmp_path / "s" / ".gen_0001.tmp-leftover").exists()
    with pytest.raises(ValueError, match=r"already holds the synthetic data of run"):
        _fit(tmp_path, checkpoints=False)
