"""Finding the real training data: the user's own train dataloader, from wherever ``trainer.fit``
was given it (a DataModule, the LightningModule's ``train_dataloader``, a loader), unchanged."""

from __future__ import annotations

import hashlib
import json
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

__all__ = ["RealSource", "find_real_data", "scan_real_data"]


@dataclass(frozen=True)
class RealSource:
    """The real data and the loader it came in.

    Attributes:
        real: the real dataset and the structure of its items.
        template: the user's loader; every generation's loader copies its settings.
        digest: SHA-256 over every field of every real item, in index order
            (:func:`scan_real_data`); ``""`` when not computed.
    """

    real: RealData
    template: DataLoader[Any]
    digest: str = ""

    def fingerprint(self) -> dict[str, Any]:
        """What the checkpoint records of the real data: its size and digest."""
        return {"items": len(self.real), "sha256": self.digest}


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
    described = {k: describe_rule(r, identity=True) for k, r in rules.items()}
    codec = ItemCodec.infer(example, data_field, condition_field, described)
    check_rules(rules, codec, example)
    real = RealData(dataset, codec)
    return RealSource(real, loader, scan_real_data(real, loader))


class _Fields:
    """Collates items into their data tensor, their other tensors and their strings (picklable,
    for loader workers)."""

    def __init__(self, codec: ItemCodec) -> None:
        self.codec = codec

    def __call__(self, items: list[Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, list[str]]]:
        tensors, strings = self.codec.encode_fields(items)
        return torch.stack([self.codec.data_of(item) for item in items]), tensors, strings


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def _scan_tensor(data: torch.Tensor) -> str:
    """:func:`scan_real_data` of a dataset that is one tensor (its items its rows): the same
    digest (the batches' bytes in order are the tensor's bytes), without indexing every row."""
    if data.is_floating_point():
        rows = ~torch.isfinite(data.reshape(len(data), -1)).all(dim=1)
        if bool(rows.any()):
            raise ValueError(
                f"The real training data holds NaN or infinite values: {int(rows.sum())} of its {len(data)} items"
                f" (Tensor), the first at index {int(torch.nonzero(rows)[0])}. Clean the dataset before training."
            )
    return hashlib.sha256(_tensor_bytes(data)).hexdigest()


def scan_real_data(real: RealData, template: DataLoader[Any]) -> str:
    """Read every real item once, before training: refuse NaN or infinite values in the data
    field (they would otherwise surface generations later, as if the model had produced them) and
    return the SHA-256 of every field of every item, in index order, which the checkpoint keeps so
    that a resume with other real data is refused. Large datasets are read with the user loader's
    workers. The digest covers every item (no sampling): the NaN check reads them all anyway, and
    hashing adds about 1 s per GB of items here (``benchmarks/real_digest_cost.py``).

    Raises:
        ValueError: NaN or infinite values, naming the first bad item and how many there are.
    """
    if isinstance(real.dataset, torch.Tensor) and real.codec.container == "tensor":
        return _scan_tensor(real.dataset)  # the items are the rows of one tensor: read it whole
    workers = template.num_workers if len(real) >= 20_000 else 0
    reader = DataLoader(
        real.dataset,
        batch_size=512,
        collate_fn=_Fields(real.codec),
        num_workers=workers,
        multiprocessing_context=template.multiprocessing_context if workers else None,
    )
    digest = hashlib.sha256()
    check = real.codec.data_dtype.is_floating_point
    bad, first, start = 0, -1, 0
    for data, tensors, strings in reader:
        if check:
            rows = ~torch.isfinite(data.reshape(len(data), -1)).all(dim=1)
            if bool(rows.any()):
                first = start + int(torch.nonzero(rows)[0]) if first < 0 else first
                bad += int(rows.sum())
        digest.update(_tensor_bytes(data))
        for name in sorted(tensors):
            digest.update(name.encode() + _tensor_bytes(tensors[name]))
        for name in sorted(strings):
            digest.update(json.dumps([name, strings[name]]).encode())
        start += len(data)
    if bad:
        raise ValueError(
            f"The real training data holds NaN or infinite values: {bad} of its {len(real)} items"
            f" ({type(real.dataset).__name__}), the first at index {first}. Clean the dataset before training."
        )
    return digest.hexdigest()
