"""``start_from="initial"``: each generation trains from the state the run started from."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from helpers import trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from safetensors.torch import load_file, save_file

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.datasets.toy import EightGaussiansDataModule
from sclc_lightning.loop.interruption import RunInterrupted
from sclc_lightning.loop.restart import INITIAL_STATE_FILE
from sclc_lightning.models import PointDDPM
from sclc_lightning.store.manifest import RunDirectoryError
from tests.loop.test_interruption import SignalAtBatch


def _digest(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class Watch(pl.Callback):
    """The weights' digest and the optimizer's state size at the start of every epoch."""

    def __init__(self) -> None:
        self.starts: list[tuple[str, int]] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.starts.append((_digest(pl_module.state_dict()), len(trainer.optimizers[0].state)))


def _fit(root: Path, start_from: str, *extra: pl.Callback, ckpt_path: str | None = None) -> PointDDPM:
    pl.seed_everything(0, verbose=False)
    model = PointDDPM(hidden=32, layers=2, timesteps=20, sampling_steps=20)
    data = EightGaussiansDataModule(n=160, n_test=8, batch_size=16)
    loop = SelfConsumingLoop(
        0.5, 2, images_per_generation=320, mode="accumulate", sample_batch_size=40, start_from=start_from
    )
    checkpoints = ModelCheckpoint(dirpath=root / "ck", every_n_epochs=1, save_top_k=-1, filename="{epoch}")
    trainer(root, [loop, *extra, checkpoints], enable_checkpointing=True).fit(
        model, datamodule=data, ckpt_path=ckpt_path
    )
    return model


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[tuple[str, int]]]:
    watch = Watch()
    model = _fit(tmp_path_factory.mktemp("reference"), "initial", watch)
    return _digest(model.state_dict()), watch.starts


def test_every_generation_starts_from_the_initial_weights_and_a_fresh_optimizer(
    tmp_path: Path, reference: tuple[str, list[tuple[str, int]]]
) -> None:
    final, starts = reference
    assert len(starts) == 3 and len({digest for digest, _ in starts}) == 1  # generations 0, 1, 2
    assert [size for _, size in starts] == [0, 0, 0]  # Adam's moments dropped
    watch = Watch()
    continued = _fit(tmp_path, "previous", watch)
    assert len({digest for digest, _ in watch.starts}) == 3 and watch.starts[1][1] > 0
    assert _digest(continued.state_dict()) != final


def test_resumes_are_identical_and_the_initial_file_is_checked(
    tmp_path: Path, reference: tuple[str, list[tuple[str, int]]]
) -> None:
    final, _ = reference
    run = tmp_path / "run"
    with pytest.raises(RunInterrupted) as stopped:  # in the middle of generation 2
        _fit(run, "initial", SignalAtBatch(signal.SIGTERM, epoch=2, batch=5))
    assert stopped.value.checkpoint is not None
    assert _digest(_fit(run, "initial", ckpt_path=str(stopped.value.checkpoint)).state_dict()) == final
    # from the end of generation 0 (the next generation starts from the initial state again)
    end_of_zero = str(run / "ck" / "epoch=0.ckpt")
    assert _digest(_fit(tmp_path / "run", "initial", ckpt_path=end_of_zero).state_dict()) == final

    initial = next(run.rglob(INITIAL_STATE_FILE))
    tampered = load_file(str(initial))
    name = next(iter(tampered))
    tampered[name] = tampered[name] + 1
    save_file(tampered, str(initial))
    with pytest.raises(RunDirectoryError, match=f"{INITIAL_STATE_FILE} has SHA-256 .* not the"):
        _fit(run, "initial", ckpt_path=end_of_zero)
    initial.unlink()
    with pytest.raises(RunDirectoryError, match=f"{INITIAL_STATE_FILE} is missing"):
        _fit(run, "initial", ckpt_path=end_of_zero)


def test_a_run_that_continued_does_not_resume_as_one_that_restarts(tmp_path: Path) -> None:
    _fit(tmp_path, "previous")
    with pytest.raises(ValueError, match="start_from: checkpoint 'previous' vs now 'initial'"):
        _fit(tmp_path, "initial", ckpt_path=str(tmp_path / "ck" / "epoch=0.ckpt"))
    with pytest.raises(ValueError, match="`start_from` must be 'previous' or 'initial'"):
        SelfConsumingLoop(0.5, 1, start_from="scratch")
    with pytest.raises(ValueError, match=r"got 'initail' \(did you mean 'initial'\?\)"):
        SelfConsumingLoop(0.5, 1, start_from="initail")
