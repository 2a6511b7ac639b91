"""The exchange of a sampling round between ranks (sclc_lightning.loop.exchange)."""

from __future__ import annotations

from pathlib import Path

import torch

from sclc_lightning.items.codec import ItemCodec, SyntheticBatch
from sclc_lightning.items.real import RealData
from sclc_lightning.loop.exchange import Exchange
from sclc_lightning.store.synthetic import SyntheticStore


def test_the_exchange_gathers_the_ranks_in_order_and_leaves_nothing(tmp_path: Path) -> None:
    labels = torch.arange(6) % 3
    items = [(torch.zeros(1), int(label)) for label in labels]
    real = RealData(items, ItemCodec.infer(items[0], condition_field=1))
    exchange = Exchange(tmp_path, real)
    exchange.write(2, 1, 1, SyntheticBatch(torch.tensor([[3.0]]), torch.tensor([5])))  # ranks finish in any order
    exchange.write(2, 1, 0, SyntheticBatch(torch.tensor([[1.0], [2.0]]), torch.tensor([0, 1])))
    batch = exchange.read(2, 1, 2)
    assert batch.data.flatten().tolist() == [1.0, 2.0, 3.0] and batch.source_index.tolist() == [0, 1, 5]
    assert batch.conditions.tolist() == [0, 1, 2]  # the labels of the source items
    assert not (tmp_path / ".exchange").exists()  # the exchange files are gone, and their folder


def test_a_crash_mid_exchange_leaves_files_the_store_removes(tmp_path: Path) -> None:
    real = RealData([torch.zeros(1)] * 2, ItemCodec.infer(torch.zeros(1)))
    Exchange(tmp_path, real).write(1, 0, 0, SyntheticBatch(torch.tensor([[1.0]]), torch.tensor([0])))
    assert SyntheticStore(tmp_path).remove_stale() and not (tmp_path / ".exchange").exists()
