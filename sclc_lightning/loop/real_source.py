"""Finding the real training data: the user's own train dataloader, from wherever ``trainer.fit``
was given it (a DataModule, the LightningModule's ``train_dataloader``, a loader), unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader, IterableDataset

from sclc_lightning import _lightning_compat as compat
from sclc_lightning.data.items import FieldKey, ItemCodec
from sclc_lightning.data.policies import MixingPolicy
from sclc_lightning.data.real import RealData

__all__ = ["RealSource", "find_real_data"]


@dataclass(frozen=True)
class RealSource:
    """The real data and the loader it came in.

    Attributes:
        real: the real dataset and the structure of its items.
        template: the user's loader; every generation's loader copies its settings.
    """

    real: RealData
    template: DataLoader[Any]


def find_real_data(
    trainer: pl.Trainer, policy: MixingPolicy, data_field: FieldKey, condition_field: FieldKey
) -> RealSource:
    """Ask the trainer for the user's train dataloader and read the structure of its items.

    Raises:
        TypeError: not a ``DataLoader`` over a map-style dataset, or items of an unsupported type.
        ValueError: an empty dataset, no batch size, or a dataset the mixing policy cannot use.
    """
    loader = compat.request_train_dataloader(trainer)
    if not isinstance(loader, DataLoader):
        raise TypeError(
            f"SelfConsumingLoop needs the train dataloader to be a torch DataLoader, got {type(loader).__name__}."
        )
    dataset = loader.dataset
    if isinstance(dataset, IterableDataset):
        raise TypeError("SelfConsumingLoop needs a map-style real dataset, got an IterableDataset.")
    size = len(dataset)  # type: ignore[arg-type]
    if size == 0:
        raise ValueError("The real training set is empty (the train dataloader's dataset has 0 items).")
    policy.check_real_size(size)
    if loader.batch_size is None and getattr(loader.batch_sampler, "batch_size", None) is None:
        raise ValueError("SelfConsumingLoop needs the train dataloader's batch size; it has none.")
    codec = ItemCodec.infer(dataset[0], data_field, condition_field)
    return RealSource(RealData(dataset, codec), loader)
