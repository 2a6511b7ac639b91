"""The structure of items (conditions, dicts, strings) survives sampling and storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from helpers import ConditionalGaussian, GaussianModel, fit, gaussian_points, loader
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, Dataset

from sclc_lightning import SelfConsumingLoop


def test_conditional_items_keep_structure_and_labels(tmp_path: Path) -> None:
    points = gaussian_points(60)
    labels = torch.arange(60) % 3
    data = loader(points + 10.0 * labels[:, None], labels=labels)
    model = ConditionalGaussian(lr=0.1)
    batches: list[Any] = []

    class Spy(Callback):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            batches.append((trainer.current_epoch, batch))

    loop = SelfConsumingLoop(0.5, 2, images_per_generation=90, condition_field=1, output_dir=tmp_path / "s")
    fit(tmp_path, model, data, loop, callbacks=[Spy()])
    last = [b for e, b in batches if e == 2]
    assert all(isinstance(b, list) and b[1].dtype == torch.int64 for b in last)
    xs, ys = torch.cat([b[0] for b in last]), torch.cat([b[1] for b in last])
    # every item, real or synthetic, sits near 10 * its label: conditions reached `sample`
    assert ((xs - 10.0 * ys[:, None]).mean(1).abs() < 7.0).all() and len(ys) == 90
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "s" / "gen_0002" / "shard_00000.safetensors"))
    assert torch.equal(stored["field.1"], labels[stored["source_index"]])  # labels of the source items
    assert ((stored["data"] - 10.0 * stored["field.1"][:, None]).mean(1).abs() < 7.0).all()


class DictItems(Dataset[dict[str, Any]]):
    def __init__(self, points: torch.Tensor):
        self.points = points

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"x": self.points[i], "name": f"item{i}", "weight": 1.5}


def test_dict_items_with_strings_round_trip(tmp_path: Path) -> None:
    seen: list[Any] = []

    class Spy(Callback):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            seen.append(batch)

    copied = {"name": "copy", "weight": "copy"}  # the model is unconditional: the fields are copied
    loop = SelfConsumingLoop(1.0, 1, images_per_generation=40, mode="replace", output_dir=tmp_path / "s", fields=copied)
    fit(tmp_path, GaussianModel(), DataLoader(DictItems(gaussian_points(20)), batch_size=10), loop, callbacks=[Spy()])
    last = seen[-1]
    assert set(last) == {"x", "name", "weight"}
    assert last["weight"].dtype == torch.float64 and all(n.startswith("item") for n in last["name"])
