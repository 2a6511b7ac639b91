"""Tiny models and data shared by the tests."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset


class GaussianModel(pl.LightningModule):
    """A diagonal Gaussian fitted by maximum likelihood with Adam; samples with the generator."""

    def __init__(
        self,
        dim: int = 2,
        lr: float = 0.05,
        scheduler: bool | str = False,
        record: bool = False,
        noise: float = 0.0,
    ):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(dim))
        self.log_std = nn.Parameter(torch.zeros(dim))
        self.lr = lr
        self.scheduler = scheduler
        self.record = record
        self.noise = noise
        self.seen: list[Tensor] = []

    def _points(self, batch: Any) -> Tensor:
        if isinstance(batch, Tensor):
            return batch
        if isinstance(batch, dict):
            return batch["x"]
        return batch[0]

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x = self._points(batch)
        if self.record:
            self.seen.append(x.detach().clone())
        if self.noise:  # consumes the global RNG, as diffusion training steps do
            x = x + self.noise * torch.randn_like(x)
        z = (x - self.mean) / self.log_std.exp()
        return (0.5 * z.pow(2) + self.log_std).sum(1).mean()

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters(), lr=self.lr)
        if not self.scheduler:
            return opt
        interval = "epoch" if self.scheduler == "epoch" else "step"
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1 if interval == "epoch" else 3, gamma=0.9)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval}}

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None, conditions: Any = None) -> Tensor:
        noise = torch.randn(num_samples, self.mean.numel(), generator=generator)
        return (self.mean + self.log_std.exp() * noise).detach()


class ConditionalGaussian(GaussianModel):
    """Class-conditional: the mean of class k is shifted by 10 k in every dimension."""

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, y = batch
        return super().training_step((x - 10.0 * y[:, None].to(x.dtype),), batch_idx)

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None, conditions: Any = None) -> Tensor:
        assert conditions is not None and len(conditions) == num_samples
        base = super().sample(num_samples, generator=generator)
        return base + 10.0 * conditions[:, None].to(base.dtype)


def gaussian_points(n: int, dim: int = 2, seed: int = 0) -> Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * 2.0 + 1.0


class TensorItems(Dataset[Tensor]):
    """Items that are bare tensors."""

    def __init__(self, points: Tensor):
        self.points = points

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> Tensor:
        return self.points[index]


def loader(points: Tensor, batch_size: int = 10, labels: Tensor | None = None) -> DataLoader[Any]:
    dataset: Dataset[Any] = TensorItems(points) if labels is None else TensorDataset(points, labels)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True)


def trainer(tmp_path: Any, callbacks: list[Any], **kwargs: Any) -> pl.Trainer:
    options: dict[str, Any] = dict(
        default_root_dir=str(tmp_path),
        max_epochs=-1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    options.update(kwargs)
    return pl.Trainer(callbacks=callbacks, **options)


def wandb_offline_records(run_dir: Any) -> list[Any]:
    """The records of the offline W&B run under ``run_dir`` (its ``run-*.wandb`` file).

    The file is a LevelDB-style log: a 7-byte header (":W&B", magic, version), then records of
    (checksum u32, length u16, type u8) + data in 32 KiB blocks; each record is a protobuf.
    """
    import struct
    from pathlib import Path

    from wandb.proto import wandb_internal_pb2

    (path,) = Path(run_dir).glob("wandb/offline-run-*/run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    position, block, pending, records = 7, 32768, b"", []
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:  # block trailer padding
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending + chunk if kind == 4 else chunk)
            records.append(record)
            pending = b""
        elif kind in (2, 3):  # first and middle pieces
            pending += chunk
    return records


def metrics_rows(run_dir: Any) -> list[dict[str, float]]:
    """The rows of a run's ``metrics.csv``, numbers only (empty cells left out)."""
    import csv
    from pathlib import Path

    with open(Path(run_dir) / "metrics.csv", newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]


class CrashAt(pl.Callback):
    """Raises "simulated crash" in epoch ``epoch``: at its start (``where="start"``, a crash
    between generations) or after its first batch (``where="batch"``, in the middle of one)."""

    def __init__(self, epoch: int, where: str = "start"):
        self.epoch, self.where = epoch, where

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.where == "start" and trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.where == "batch" and trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def fit(tmp_path: Any, model: pl.LightningModule, data: Any, loop: Any, **kwargs: Any) -> pl.Trainer:
    """Fit ``model`` on ``data`` with ``loop`` (and ``callbacks=``, ``ckpt_path=``, Trainer
    arguments) in a small CPU trainer."""
    ckpt_path = kwargs.pop("ckpt_path", None)
    t = trainer(tmp_path, [loop, *kwargs.pop("callbacks", [])], **kwargs)
    t.fit(model, train_dataloaders=data, ckpt_path=ckpt_path)
    return t


def manifest(path: Any) -> dict[str, Any]:
    """A run directory's manifest, as JSON data: ``manifest.json`` with the journal's records."""
    from pathlib import Path

    from sclc_lightning.store import SyntheticStore

    found = SyntheticStore(Path(path)).read_manifest()
    assert found is not None, f"no manifest in {path}"
    return found.to_json()


def load_script(path: Any) -> Any:
    """The module of a standalone script (``scripts/*.py``, ``benchmarks/*.py``), imported from
    its path so that its functions are tested in-process."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
