"""The item contract in a fit: conditions at λ > 1, generated fields, the audit of conditional
models, what the manifest and the resume fingerprint record, and the correctors' capabilities."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import ConditionalGaussian, GaussianModel, gaussian_points, loader, trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from safetensors.torch import load_file
from torch.utils.data import DataLoader, TensorDataset

from sclc_lightning import SelfConsumingLoop, SyntheticDataError
from sclc_lightning.items.contract import ItemContractError


def manifest(path: Path) -> dict[str, Any]:
    return json.loads((path / "manifest.json").read_text())


def labelled(n_per_class: list[int]) -> DataLoader[Any]:
    labels = torch.cat([torch.full((k,), c) for c, k in enumerate(n_per_class)])
    return loader(gaussian_points(len(labels)) + 10.0 * labels[:, None], labels=labels)


def test_conditions_keep_the_real_proportions_beyond_lambda_1(tmp_path: Path) -> None:
    """At λ = 4 every real item's label is asked for exactly four times (drawing with
    replacement gave [397, 412, 386, 405] for 400 each)."""
    loop = SelfConsumingLoop(4, 1, images_per_generation=20, condition_field=1, output_dir=tmp_path / "s")
    trainer(tmp_path, [loop]).fit(ConditionalGaussian(), labelled([100, 100, 100, 100]))
    stored = load_file(str(tmp_path / "s" / "gen_0001" / "shard_00000.safetensors"))
    assert stored["field.1"].bincount().tolist() == [400, 400, 400, 400]
    assert stored["source_index"].bincount(minlength=400).tolist() == [4] * 400
    # the data was generated for its label (class k is shifted by 10 k)
    assert ((stored["data"].mean(1) / 10).round() - stored["field.1"]).abs().max() <= 1
    # at λ = 2.5 each item twice, half of them a third time, without replacement
    loop = SelfConsumingLoop(2.5, 1, images_per_generation=20, condition_field=1, output_dir=tmp_path / "t")
    trainer(tmp_path, [loop]).fit(ConditionalGaussian(), labelled([10, 30]))
    uses = load_file(str(tmp_path / "t" / "gen_0001" / "shard_00000.safetensors"))["source_index"].bincount()
    assert sorted(set(uses.tolist())) == [2, 3] and int(uses.sum()) == 100 and int((uses == 3).sum()) == 20


def test_a_conditional_sampler_without_a_condition_field_is_refused(tmp_path: Path) -> None:
    """The README's minimal model forgot `condition_field`: it used to train on 4,992 wrong labels
    of 6,400 in generation 1."""
    loop = SelfConsumingLoop(1.0, 1, mode="replace", output_dir=tmp_path / "s")
    with pytest.raises(ItemContractError, match=r"carry field 1 .*ConditionalGaussian.sample takes `conditions`"):
        trainer(tmp_path, [loop]).fit(ConditionalGaussian(), labelled([10, 10]))
    assert not (tmp_path / "s").exists()


class JointModel(GaussianModel):
    """Generates a point and its quadrant label together (the label is a function of the point)."""

    def sample(self, num_samples: int, *, generator: Any = None, conditions: Any = None) -> dict[int, torch.Tensor]:
        points = super().sample(num_samples, generator=generator)
        return {0: points, 1: quadrant(points)}


def quadrant(points: torch.Tensor) -> torch.Tensor:
    return (points[:, 0] > 0).long() + 2 * (points[:, 1] > 0).long()


def joint_data() -> DataLoader[Any]:
    points = torch.randn(40, 2, generator=torch.Generator().manual_seed(0))
    return DataLoader(TensorDataset(points, quadrant(points)), batch_size=10, shuffle=True)


class Batches(Callback):
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.seen.append(batch)


def test_fields_generated_with_the_data_are_stored_with_it(tmp_path: Path) -> None:
    spy = Batches()
    loop = SelfConsumingLoop(
        1.0, 2, images_per_generation=40, mode="replace", fields={1: "generated"}, output_dir=tmp_path / "s"
    )
    trainer(tmp_path, [loop, spy]).fit(JointModel(), joint_data())
    assert all(torch.equal(y, quadrant(x)) for x, y in spy.seen)  # every item, real or synthetic
    assert manifest(tmp_path / "s")["item"]["fields"] == [[1, "generated"]]
    # ideal_mixture swaps whole items: a replaced point takes the real item's label too
    spy = Batches()
    loop = SelfConsumingLoop(
        1.0,
        1,
        images_per_generation=40,
        mode="replace",
        fields={1: "generated"},
        corrector="ideal_mixture",
        output_dir=tmp_path / "t",
    )
    trainer(tmp_path, [loop, spy]).fit(JointModel(), joint_data())
    assert all(torch.equal(y, quadrant(x)) for x, y in spy.seen)


def test_generated_fields_are_refused_with_a_corrector_that_moves_the_data(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(1.0, 1, fields={1: "generated"}, corrector="optimal_transport", output_dir=tmp_path / "s")
    with pytest.raises(ValueError, match=r"'optimal_transport' cannot correct these items: fields \[1\] are generated"):
        trainer(tmp_path, [loop]).fit(JointModel(), joint_data())


def test_a_sampler_that_forgets_a_generated_field_is_refused_before_generation_0(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(1.0, 1, fields={1: "generated"}, output_dir=tmp_path / "s")
    with pytest.raises(SyntheticDataError, match=r"dry run before generation 0.*must return a mapping of the data"):
        trainer(tmp_path, [loop]).fit(GaussianModel(), joint_data())


def test_resume_with_other_field_rules_is_refused(tmp_path: Path) -> None:
    def fit(fields: dict[Any, Any], ckpt_path: str | None = None) -> None:
        loop = SelfConsumingLoop(1.0, 2, images_per_generation=20, fields=fields, output_dir=tmp_path / "s")
        saver = ModelCheckpoint(dirpath=tmp_path / "ck", save_top_k=-1, filename="{epoch}")
        trainer(tmp_path, [loop, saver], enable_checkpointing=True).fit(JointModel(), joint_data(), ckpt_path=ckpt_path)

    fit({1: "generated"})
    with pytest.raises(
        ValueError, match=r"changed settings \(item.fields: checkpoint \[\[1, 'generated'\]\] vs now None"
    ):
        fit({1: "copy"}, ckpt_path=str(tmp_path / "ck" / "epoch=1.ckpt"))


def test_a_corrector_that_cannot_handle_tokens_is_refused_at_set_up(tmp_path: Path) -> None:
    from sclc_lightning.correctors import PhysicsCorrector

    tokens = torch.randint(5, (20, 4))
    loop = SelfConsumingLoop(1.0, 1, corrector=PhysicsCorrector(1.0, num_workers=0), output_dir=tmp_path / "s")
    with pytest.raises(ValueError, match=r"'physics' cannot correct these items: the data field None is torch.int64"):
        trainer(tmp_path, [loop]).fit(GaussianModel(), DataLoader(list(tokens), batch_size=5))
