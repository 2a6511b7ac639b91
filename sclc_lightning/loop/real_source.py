"""Finding the real training data: the user's own train dataloader, from wherever ``trainer.fit``
was given it (a DataModule, the LightningModule's ``train_dataloader``, a loader), unchanged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from sclc_lightning import _lightning_compat as compat
from sclc_lightning.items.codec import FieldKey, ItemCodec
from sclc_lightning.items.contract import FieldRule, check_rules, describe_rule
from sclc_lightning.items.real import RealData
from sclc_lightning.mixing.policies import MixingPolicy

__all__ = ["RealSource", "check_finite", "find_real_data"]


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
    trainer: pl.Trainer,
    policy: MixingPolicy,
    data_field: FieldKey,
    condition_field: FieldKey,
    rules: Mapping[FieldKey, FieldRule] | None = None,
) -> RealSource:
    """Ask the trainer for the user's train dataloader and read the structure of its items.

    Raises:
        TypeError: not a ``DataLoader`` over a map-style dataset, or items of an unsupported type.
        ValueError: an empty dataset, no batch size, NaN or infinite values in the data, or a
            dataset the mixing policy cannot use.
        ItemContractError: a rule of ``rules`` (the item contract) does not fit the items.
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
    example = dataset[0]
    rules = dict(rules or {})
    codec = ItemCodec.infer(example, data_field, condition_field, {k: describe_rule(r) for k, r in rules.items()})
    check_rules(rules, codec, example)
    real = RealData(dataset, codec)
    check_finite(real, loader)
    return RealSource(real, loader)


class _DataField:
    """Collates the data field of items (picklable, for loader workers)."""

    def __init__(self, codec: ItemCodec) -> None:
        self.codec = codec

    def __call__(self, items: list[Any]) -> torch.Tensor:
        return torch.stack([self.codec.data_of(item) for item in items])


def check_finite(real: RealData, template: DataLoader[Any]) -> None:
    """Refuse real data whose data field holds NaN or infinite values, before training (it
    would otherwise surface generations later, as if the model had produced them).

    Large datasets are read with the user loader's workers.

    Raises:
        ValueError: naming the first bad item and how many there are.
    """
    if not real.codec.data_dtype.is_floating_point:
        return
    workers = template.num_workers if len(real) >= 20_000 else 0
    reader = DataLoader(
        real.dataset,
        batch_size=512,
        collate_fn=_DataField(real.codec),
        num_workers=workers,
        multiprocessing_context=template.multiprocessing_context if workers else None,
    )
    bad, first, start = 0, -1, 0
    for batch in reader:
        rows = ~torch.isfinite(batch.reshape(len(batch), -1)).all(dim=1)
        if bool(rows.any()):
            first = start + int(torch.nonzero(rows)[0]) if first < 0 else first
            bad += int(rows.sum())
        start += len(batch)
    if bad:
        raise ValueError(
            f"The real training data holds NaN or infinite values: {bad} of its {len(real)} items"
            f" ({type(real.dataset).__name__}), the first at index {first}. Clean the dataset before training."
        )
