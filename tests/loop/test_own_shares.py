"""Every rank corrects and writes its own share (a point-by-point corrector, or none); global rank
zero only commits the record. Two CPU processes (ddp_spawn, gloo), checked through files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as pl
import pytest
import torch
from helpers import GaussianModel, gaussian_points
from lightning.fabric.plugins.environments.lightning import find_free_network_port
from torch.utils.data import DataLoader, Dataset

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.correctors import Corrector
from sclc_lightning.correctors.base import get_corrector_class
from sclc_lightning.items.codec import ItemCodec, SyntheticBatch
from sclc_lightning.items.real import RealData
from sclc_lightning.loop.correction import Correction
from sclc_lightning.loop.shares import OwnShares, _first_shard, writes_own_shares
from sclc_lightning.store import SyntheticStore
from sclc_lightning.store.manifest import RunDirectoryError

N = 51


class Tagged(Dataset[dict[str, Any]]):
    """Dict items with a label (the condition) and a string field (kept from the source item)."""

    def __init__(self) -> None:
        self.points = gaussian_points(N)

    def __len__(self) -> int:
        return N

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"x": self.points[index], "y": index % 4, "tag": f"item-{index}"}


class Shrink(Corrector):
    """Moves every point toward the origin (point by point, no draw); writes, per rank, how many
    points it corrected, to ``$SCLC_TEST_SHARES``; reports the mean distance moved."""

    pointwise = True
    deciding = ()
    fail_rank: ClassVar[int | None] = None

    def correct(self, batch: SyntheticBatch, *, generation: int, generator: Any, reference: Any) -> torch.Tensor:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        if rank == self.fail_rank:
            raise RuntimeError(f"corrector broke on rank {rank}")
        with open(Path(os.environ["SCLC_TEST_SHARES"]) / f"{type(self).__name__}_rank{rank}.txt", "a") as f:
            f.write(f"{generation} {len(batch)}\n")
        out = batch.data / (1 + self.strength)
        self.report(moved=float((batch.data - out).norm(dim=1).mean()))
        return out


class ShrinkGathered(Shrink):
    """The same correction, declared as needing the whole generation."""

    pointwise = False


class ShrinkFailing(Shrink):
    fail_rank = 1


def _fit(tmp_path: Path, corrector: Corrector | None, name: str, devices: int = 2) -> Path:
    os.environ["MASTER_PORT"] = str(find_free_network_port())
    os.environ["SCLC_TEST_SHARES"] = str(tmp_path)
    out = tmp_path / name
    loop = SelfConsumingLoop(
        1.0,
        2,
        images_per_generation=40,
        output_dir=out,
        corrector=corrector,
        condition_field="y",
        data_field="x",
        shard_rows=10,
        seed=0,
        dry_run=False,  # its own two points per rank would be counted below
    )
    trainer = pl.Trainer(
        default_root_dir=str(tmp_path),
        accelerator="cpu",
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        max_epochs=-1,
        callbacks=[loop],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(GaussianModel(), train_dataloaders=DataLoader(Tagged(), batch_size=10, shuffle=True))
    return out


def _stored(folder: Path, generation: int) -> dict[str, Any]:
    store = SyntheticStore(folder)
    record = store.records()[generation]
    items = store.open_generation(record, ItemCodec.from_json(store.read_manifest().item), N)  # type: ignore[union-attr]
    return {
        "data": items.load("data"),
        "source": items.load("source_index"),
        "labels": items.load("field.y"),
        "tags": [items[i]["tag"] for i in range(len(items))],
        "shards": [(s.name, s.rows) for s in record.shards],
        "statistics": record.statistics,
    }


def test_each_rank_corrects_and_writes_its_own_share(tmp_path: Path) -> None:
    own = _fit(tmp_path, Shrink(strength=1.0), "own")
    gathered = _fit(tmp_path, ShrinkGathered(strength=1.0), "gathered")
    # who corrected what: each rank its own 26 / 25 points, against rank zero all 51
    assert (tmp_path / "Shrink_rank0.txt").read_text().split("\n")[:-1] == ["1 26", "2 26"]
    assert (tmp_path / "Shrink_rank1.txt").read_text().split("\n")[:-1] == ["1 25", "2 25"]
    assert (tmp_path / "ShrinkGathered_rank0.txt").read_text().split("\n")[:-1] == ["1 51", "2 51"]
    assert not (tmp_path / "ShrinkGathered_rank1.txt").exists()
    for generation in (1, 2):
        a, b = _stored(own, generation), _stored(gathered, generation)
        # the same items, row for row: data, source items, labels and strings kept from them
        assert torch.equal(a["data"], b["data"]) and torch.equal(a["source"], b["source"])
        assert torch.equal(a["labels"], a["source"] % 4) and torch.equal(a["labels"], b["labels"])
        assert a["tags"] == [f"item-{i}" for i in a["source"].tolist()] == b["tags"]
        # only the shard boundaries differ: each rank's share starts a shard (26 = 10+10+6, 25 = 10+10+5)
        assert [rows for _, rows in a["shards"]] == [10, 10, 6, 10, 10, 5]
        assert [name for name, _ in a["shards"]] == [f"shard_{i:05d}.safetensors" for i in range(6)]
        assert [rows for _, rows in b["shards"]] == [10, 10, 10, 10, 10, 1]
        # the report, averaged over the ranks weighted by their points, is the whole generation's
        assert a["statistics"]["moved"] == pytest.approx(b["statistics"]["moved"], rel=1e-6)  # float32 means
    assert not (own / ".exchange").exists() and not [p for p in own.iterdir() if p.name.startswith(".gen_")]


def test_a_rank_that_fails_to_correct_stops_every_rank_and_leaves_no_generation(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="rank 1 failed: RuntimeError: corrector broke on rank 1"):
        _fit(tmp_path, ShrinkFailing(strength=1.0), "failing")
    left = sorted(p.name for p in (tmp_path / "failing").iterdir())
    assert not [name for name in left if name.startswith(("gen_", ".gen_"))], left  # the folder removed, no record
    assert SyntheticStore(tmp_path / "failing").records() == {}


def test_who_writes_its_own_share() -> None:
    kmeans, ot, verify = (get_corrector_class(n) for n in ("kmeans", "optimal_transport", "verify"))
    assert kmeans.pointwise and not ot.pointwise and not verify.pointwise
    assert writes_own_shares(None, 2, 5) and not writes_own_shares(None, 1, 5) and not writes_own_shares(None, 2, 0)
    assert writes_own_shares(Shrink(), 8, 3) and not writes_own_shares(ShrinkGathered(), 8, 3)

    class Truthy(Shrink):
        pointwise = 1  # type: ignore[assignment]  # only True itself declares it

    class SelectsToo(Shrink):
        selects = True  # a selecting corrector keeps its rounds on global rank zero

    assert not writes_own_shares(Truthy(), 2, 5) and not writes_own_shares(SelectsToo(), 2, 5)


@pytest.mark.parametrize(
    ("total", "world", "rows", "firsts"),
    [(51, 2, 10, [0, 3]), (25, 3, 4, [0, 3, 5]), (2, 4, 10, [0, 1, 2, 2]), (40, 2, 20, [0, 1])],
)
def test_shards_are_numbered_after_the_ranks_before(total: int, world: int, rows: int, firsts: list[int]) -> None:
    assert [_first_shard(total, world, rank, rows) for rank in range(world)] == firsts


def _commit_setup(tmp_path: Path) -> tuple[OwnShares, SyntheticStore, Path]:
    real = RealData([torch.tensor([float(i)]) for i in range(4)], ItemCodec.infer(torch.zeros(1)))
    store = SyntheticStore(tmp_path)
    store.create("run", {}, real.codec)
    shares = OwnShares(Correction(None, real, 0), store, real, 2, lambda batch, where: batch)
    return shares, store, store.start_generation(1)


def _share(store: SyntheticStore, folder: Path, rows: int, first: int) -> dict[str, Any]:
    tensors = {"data": torch.full((rows, 1), 7.0), "source_index": torch.arange(rows)}
    shards = store.write_shards(folder, tensors, 2, first=first)
    described = [[s.name, s.rows, s.sha256] for s in shards]
    return {"rows": rows, "shards": described, "strings": {}, "report": {}, "seconds": 0.1}


def test_the_commit_checks_the_folder_against_the_notes(tmp_path: Path) -> None:
    shares, store, folder = _commit_setup(tmp_path / "a")
    notes = [_share(store, folder, 3, 0), _share(store, folder, 1, 2)]
    shares.commit(1, folder, notes, 4, step=5, settings={}, sampling_s=0.0)
    record = store.records()[1]
    assert record.count == 4 and [s.rows for s in record.shards] == [2, 1, 1] and record.sampled_at_step == 5

    shares, store, folder = _commit_setup(tmp_path / "b")
    notes = [_share(store, folder, 3, 0), _share(store, folder, 1, 2)]
    (folder / "shard_00009.safetensors").write_bytes(b"not a shard of any rank")
    with pytest.raises(RunDirectoryError, match="shard_00009"):
        shares.commit(1, folder, notes, 4, step=5, settings={}, sampling_s=0.0)
    assert store.records() == {}

    shares, store, folder = _commit_setup(tmp_path / "c")
    notes = [_share(store, folder, 3, 0)]
    with pytest.raises(Exception, match="wrote 3 points, 4 were asked for"):
        shares.commit(1, folder, notes, 4, step=5, settings={}, sampling_s=0.0)
    assert store.records() == {}
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["generations"] == []


def test_what_a_killed_write_left_is_removed_at_the_next_start(tmp_path: Path) -> None:
    """Killed after every rank wrote its shards and notes, before rank zero committed: no record
    names them, so the next start removes them (and the generation is made again)."""
    from sclc_lightning.loop.exchange import Exchange

    shares, store, folder = _commit_setup(tmp_path)
    Exchange(tmp_path, shares.real).write_note(1, 0, _share(store, folder, 3, 0))
    Exchange(tmp_path, shares.real).write_note(1, 1, _share(store, folder, 1, 2))
    assert sorted(store.remove_stale()) == sorted([".exchange", folder.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"] and store.records() == {}
