"""A user loader with persistent workers: the workers start once per fit and serve every
generation the items a loader without workers serves, and a resumed fit trains as an
uninterrupted one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import CrashAt, GaussianModel, gaussian_points, trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.items import ItemCodec
from sclc_lightning.loop.loader import ItemsByKey
from sclc_lightning.store.manifest import RunDirectoryError
from sclc_lightning.store.synthetic import SyntheticStore


class Noisy(Dataset[torch.Tensor]):
    """Points with a random jitter drawn when read (a transform in the workers)."""

    def __init__(self, points: torch.Tensor) -> None:
        self.points = points

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.points[index] + 0.01 * torch.randn(2)


def mark_start(worker_id: int) -> None:
    folder = os.environ["SCLC_TEST_WORKER_STARTS"]
    Path(folder, f"{os.getpid()}_{worker_id}").touch()


class Batches(Callback):
    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.seen.append(batch.clone())


def fit(
    tmp_path: Path,
    name: str,
    workers: int,
    persistent: bool,
    generations: int = 3,
    ckpt_path: str | None = None,
    callbacks: list[Any] | None = None,
) -> tuple[GaussianModel, Batches]:
    torch.manual_seed(0)
    starts = tmp_path / name / "starts"
    starts.mkdir(parents=True, exist_ok=True)
    os.environ["SCLC_TEST_WORKER_STARTS"] = str(starts)
    data = DataLoader(
        Noisy(gaussian_points(40)),
        batch_size=8,
        shuffle=True,
        num_workers=workers,
        persistent_workers=persistent,
        worker_init_fn=mark_start if workers else None,
    )
    spy = Batches()
    loop = SelfConsumingLoop(
        0.5, generations, images_per_generation=24, mode="accumulate", output_dir=tmp_path / name / "s"
    )
    saver = ModelCheckpoint(dirpath=tmp_path / name / "ck", save_top_k=-1, filename="{epoch}")
    model = GaussianModel()
    run = trainer(tmp_path / name, [loop, saver, spy, *(callbacks or [])], enable_checkpointing=True)
    run.fit(model, data, ckpt_path=ckpt_path)
    return model, spy


def test_persistent_workers_start_once_and_serve_what_the_workers_of_each_generation_would(tmp_path: Path) -> None:
    _, kept_batches = fit(tmp_path, "kept", workers=2, persistent=True)
    assert len(list((tmp_path / "kept" / "starts").iterdir())) == 2  # 2 workers, 4 generations
    _, fresh_batches = fit(tmp_path, "fresh", workers=2, persistent=False)
    assert len(list((tmp_path / "fresh" / "starts").iterdir())) >= 2 * 4  # started again every generation (or more)
    # the same items in the same order (the jitter differs: workers are seeded per generation)
    assert len(kept_batches.seen) == len(fresh_batches.seen) == 4 * 3
    for a, b in zip(kept_batches.seen, fresh_batches.seen):
        assert torch.allclose(a, b, atol=0.1)


def test_a_fit_with_persistent_workers_resumes_bit_identically(tmp_path: Path) -> None:
    full, full_batches = fit(tmp_path, "full", workers=2, persistent=True)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(tmp_path, "cut", workers=2, persistent=True, callbacks=[CrashAt(2)])
    resumed, resumed_batches = fit(
        tmp_path, "cut", workers=2, persistent=True, ckpt_path=str(tmp_path / "cut" / "ck" / "epoch=1.ckpt")
    )
    assert all(torch.equal(a, b) for a, b in zip(full_batches.seen[-6:], resumed_batches.seen))  # jitter too
    assert torch.equal(full.mean, resumed.mean) and torch.equal(full.log_std, resumed.log_std)


def test_items_by_key_refuses_a_generation_changed_after_it_was_checked(tmp_path: Path) -> None:
    from sclc_lightning.items import RealData, SyntheticBatch
    from sclc_lightning.mixing import Weighted

    real = RealData([torch.tensor([float(i)]) for i in range(4)], ItemCodec.infer(torch.zeros(1)))
    store = SyntheticStore(tmp_path)
    store.create("run", {}, real.codec)
    record = store.write_generation(
        1,
        SyntheticBatch(torch.full((3, 1), 7.0), torch.tensor([0, 1, 2])),
        real,
        shard_rows=2,
        sampled_at_step=5,
        settings={},
        seconds_sampling=0.0,
        seconds_correcting=0.0,
    )
    items = ItemsByKey(real.dataset, tmp_path, real.codec, seed=0, rank=0)
    assert float(items[(1, -1, "", 3, None)]) == 3.0 and float(items[(1, 1, record.digest(), 2, None)]) == 7.0
    weighted = items[(1, 1, record.digest(), 2, 0.25)]  # a weighted generation's key carries the weight
    assert isinstance(weighted, Weighted) and float(weighted.item) == 7.0 and weighted.weight == 0.25
    with pytest.raises(RunDirectoryError, match="generation 1's record changed after the loop checked it"):
        items[(1, 1, "another digest", 0, None)]
