"""A signal stops a fit at a safe point; the resumed fit ends with an uninterrupted fit's weights.

SLURM is simulated: its environment variables, and a fake ``scontrol`` on ``PATH`` that records
its arguments. The requeued "job" is a second fit in the same run directory without
``ckpt_path``, which Lightning resumes from the ``hpc_ckpt_<n>.ckpt`` the loop saved.
"""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import stat
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from helpers import trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.callbacks.generation_csv import GenerationCSV
from sclc_lightning.datasets.toy import EightGaussiansDataModule, LinearRegressionDataModule
from sclc_lightning.loop.interruption import RunInterrupted, stop_requested
from sclc_lightning.models import LinearRegressionModel, PointDDPM

GENERATIONS = 2


def _model() -> PointDDPM:
    pl.seed_everything(0, verbose=False)
    return PointDDPM(hidden=32, layers=2, timesteps=20, sampling_steps=20)


def _fit(root: Path, *extra: pl.Callback, ckpt_path: str | None = None, model: Any = None) -> PointDDPM:
    model = model or _model()
    data = EightGaussiansDataModule(n=160, n_test=8, batch_size=16)
    loop = SelfConsumingLoop(0.5, GENERATIONS, images_per_generation=480, mode="accumulate", sample_batch_size=20)
    checkpoints = ModelCheckpoint(dirpath=root / "checkpoints", every_n_epochs=1, save_top_k=-1, filename="{epoch}")
    run = trainer(root, [loop, *extra, checkpoints, GenerationCSV()], enable_checkpointing=True)
    run.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return model


def _digest(model: pl.LightningModule) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _rows(root: Path) -> list[int]:
    with open(root / "metrics.csv", newline="") as handle:
        return [int(float(row["generation"])) for row in csv.DictReader(handle)]


class SignalAtBatch(pl.Callback):
    """Sends ``signum`` to this process during batch ``batch`` of ``epoch`` (before its step)."""

    def __init__(self, signum: int, epoch: int, batch: int) -> None:
        self.signum, self.epoch, self.batch = signum, epoch, batch

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), self.signum)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _digest(_fit(tmp_path_factory.mktemp("uninterrupted")))


def test_sigterm_mid_generation_saves_and_the_resume_is_identical(tmp_path: Path, uninterrupted: str) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RunInterrupted) as stopped:
        _fit(tmp_path, SignalAtBatch(signal.SIGTERM, epoch=1, batch=7))
    assert stopped.value.signal_name == "SIGTERM" and not stopped.value.requeued
    assert stopped.value.where == "generation 1, after batch 8"
    assert stopped.value.checkpoint == tmp_path / "hpc_ckpt_1.ckpt" and stopped.value.checkpoint.exists()
    handler = signal.getsignal(signal.SIGTERM)  # the fit's handler is gone, or acts as the one it replaced
    assert handler == before or getattr(handler, "__self__", None).__class__.__name__ == "StopRequests"
    assert _rows(tmp_path) == [0]
    assert stop_requested()  # a grid worker takes a later SIGTERM as this same stop
    resumed = _fit(tmp_path, ckpt_path=str(stopped.value.checkpoint))
    assert not stop_requested()  # a new fit starts without one
    assert _digest(resumed) == uninterrupted
    assert _rows(tmp_path) == [0, 1, 2]


def test_sigterm_while_sampling_stops_and_resumes_from_the_generation_end(tmp_path: Path, uninterrupted: str) -> None:
    model = _model()
    sample, calls = model.sample, []

    def sample_then_signal(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 4 + 2:  # generation 1 samples 4 batches of 20; generation 2's second batch
            os.kill(os.getpid(), signal.SIGTERM)
        return sample(*args, **kwargs)

    model.sample = sample_then_signal  # type: ignore[method-assign]
    with pytest.raises(RunInterrupted) as stopped:
        _fit(tmp_path, model=model)
    assert stopped.value.checkpoint is None and stopped.value.where == "generation 2's sampling"
    resumed = _fit(tmp_path, ckpt_path=str(tmp_path / "checkpoints" / "epoch=1.ckpt"))
    assert _digest(resumed) == uninterrupted and _rows(tmp_path) == [0, 1, 2]


def test_simulated_slurm_requeue_signal_requeues_and_lightning_resumes(
    tmp_path: Path, uninterrupted: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.log"}\n')
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for key, value in {
        "SLURM_JOB_ID": "4242",
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NAME": "sclc-point",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "localhost",
    }.items():
        monkeypatch.setenv(key, value)
    run = tmp_path / "run"
    with pytest.raises(RunInterrupted) as stopped:
        _fit(run, SignalAtBatch(signal.SIGUSR1, epoch=2, batch=3))
    assert stopped.value.signal_name == "SIGUSR1" and stopped.value.requeued
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    # The requeued job runs the same command: no ckpt_path; Lightning finds hpc_ckpt_1.ckpt.
    resumed = _fit(run)
    assert _digest(resumed) == uninterrupted and _rows(run) == [0, 1, 2]


def _fit_regression(root: Path, *extra: pl.Callback, ckpt_path: str | None = None) -> LinearRegressionModel:
    """A closed-form fit over several batches per generation (the statistics of the batches seen
    before a stop must survive it)."""
    pl.seed_everything(0, verbose=False)
    model = LinearRegressionModel(dim=4)
    data = LinearRegressionDataModule(n=64, dim=4, batch_size=16, seed=0)
    loop = SelfConsumingLoop(1.0, GENERATIONS, mode="accumulate", data_field=1, condition_field=0)
    trainer(root, [loop, *extra, GenerationCSV()], enable_checkpointing=True).fit(
        model, datamodule=data, ckpt_path=ckpt_path
    )
    return model


def test_an_exact_fit_stopped_within_a_generation_keeps_the_batches_it_saw(tmp_path: Path) -> None:
    reference = _fit_regression(tmp_path / "reference")
    with pytest.raises(RunInterrupted) as stopped:  # generation 1: 128 items, 8 batches; stop after 3
        _fit_regression(tmp_path / "run", SignalAtBatch(signal.SIGTERM, epoch=1, batch=2))
    assert stopped.value.where == "generation 1, after batch 3" and stopped.value.checkpoint is not None
    resumed = _fit_regression(tmp_path / "run", ckpt_path=str(stopped.value.checkpoint))
    assert torch.equal(resumed.weights, reference.weights)
    assert _rows(tmp_path / "run") == [0, 1, 2]
