"""The S3 endpoint the tests start behaves as Lightning needs: checkpoints written to and resumed
from ``s3://`` through Lightning's own fsspec support give the weights of an uninterrupted fit.
The ground for run folders on object storage (issue 34, step 4), which the loop refuses today
(tests/test_object_storage_refused.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch


class _Linear(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self.layer(batch).pow(2).mean()

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(root: Path, epochs: int, seed: int = 0, **kwargs: Any) -> _Linear:
    data = torch.utils.data.DataLoader(torch.randn(64, 4, generator=torch.Generator().manual_seed(0)), batch_size=16)
    pl.seed_everything(seed)
    model = _Linear()
    checkpoint = kwargs.pop("checkpoint", None)
    trainer = pl.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=checkpoint is not None,
        callbacks=[checkpoint] if checkpoint is not None else [],
        default_root_dir=str(root),
    )
    trainer.fit(model, data, **kwargs)
    return model


def test_lightning_checkpoints_round_trip_through_the_test_s3_endpoint(
    s3_bucket: tuple[str, Any], tmp_path: Path
) -> None:
    bucket, filesystem = s3_bucket
    saver = pl.callbacks.ModelCheckpoint(dirpath=f"s3://{bucket}/checkpoints", save_last=True)
    _fit(tmp_path / "a", 2, checkpoint=saver)
    assert sorted(Path(p).name for p in filesystem.ls(f"{bucket}/checkpoints")) == [
        "epoch=1-step=8.ckpt",
        "last.ckpt",
    ]
    assert not list(tmp_path.rglob("*.ckpt"))  # nothing went to the local disk
    # another seed: another initial model, which only the checkpoint read from S3 can undo
    resumed = _fit(tmp_path / "b", 3, seed=1, ckpt_path=f"s3://{bucket}/checkpoints/last.ckpt")
    straight = _fit(tmp_path / "c", 3)
    unread = _fit(tmp_path / "d", 3, seed=1)
    same = [torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), straight.state_dict().values())]
    assert all(same) and not torch.equal(unread.layer.weight, straight.layer.weight)
