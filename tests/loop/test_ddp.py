"""Two CPU processes (ddp_spawn, gloo): the children's state is checked through files."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from helpers import GaussianModel, gaussian_points, loader
from lightning.fabric.plugins.environments.lightning import find_free_network_port

from sclc_lightning import SelfConsumingLoop

LABELS = torch.arange(51) % 4


class RecordingModel(GaussianModel):
    """Writes every training point it sees, per rank and generation, to ``record_dir``."""

    def __init__(self, record_dir: str, fail_rank: int | None = None):
        super().__init__(record=True)
        self.record_dir = record_dir
        self.fail_rank = fail_rank

    def sample(self, num_samples: int, *, generator: Any = None, conditions: Any = None) -> torch.Tensor:
        if self.fail_rank == self.global_rank and self.current_epoch == 1:
            raise RuntimeError(f"sampler broke on rank {self.global_rank}")
        if conditions is None or conditions.shape != (num_samples,):
            raise RuntimeError(f"conditions of the wrong shape reached sample: {conditions!r}")
        return super().sample(num_samples, generator=generator) + 100.0 * (self.current_epoch + 1)

    def on_train_epoch_end(self) -> None:
        seen = torch.cat(self.seen).tolist()
        self.seen = []
        path = Path(self.record_dir) / f"rank{self.global_rank}_epoch{self.current_epoch}.json"
        path.write_text(json.dumps(seen))


def _fit(tmp_path: Path, devices: int, fail_rank: int | None = None) -> SelfConsumingLoop:
    # A fresh rendezvous port for every fit: Lightning otherwise reuses the first one it picked,
    # which the previous fit's sockets may still hold.
    os.environ["MASTER_PORT"] = str(find_free_network_port())
    record = tmp_path / f"record{devices}"
    record.mkdir()
    loop = SelfConsumingLoop(
        0.5,
        2,
        images_per_generation=40,
        output_dir=tmp_path / f"synthetic{devices}",
        corrector="optimal_transport",
        condition_field=1,
        seed=0,  # one process and two, compared
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
    data = loader(gaussian_points(51), batch_size=10, labels=LABELS)
    trainer.fit(RecordingModel(str(record), fail_rank), train_dataloaders=data)
    return loop


def test_two_processes_share_the_work(tmp_path: Path) -> None:
    spawned, single = _fit(tmp_path, 2), _fit(tmp_path, 1)
    # The parent of ddp_spawn did not train: its loop reads the records the children wrote.
    counts = [(r.generation, r.num_real, r.num_synthetic, r.num_trained) for r in spawned.history]
    assert counts == [(0, 51, 0, 40), (1, 51, 25, 40), (2, 51, 25, 40)]
    assert counts == [(r.generation, r.num_real, r.num_synthetic, r.num_trained) for r in single.history]
    from safetensors.torch import load_file

    stored = {}
    for devices in (1, 2):
        manifest = json.loads((tmp_path / f"synthetic{devices}" / "manifest.json").read_text())
        assert [g["count"] for g in manifest["generations"]] == [25, 25]  # floor(0.5 * 51), any world size
        stored[devices] = load_file(str(tmp_path / f"synthetic{devices}" / "gen_0002" / "shard_00000.safetensors"))
        assert torch.equal(stored[devices]["field.1"], LABELS[stored[devices]["source_index"]])  # conditions kept
        assert stored[devices]["source_index"].unique().numel() == 25  # 25 distinct real items lent their labels
    # what docs/loop.md#ddp says DDP shares with one process: the same source items (and so the same
    # conditions) in the same order; not the same points (each rank samples with its own generator)
    assert torch.equal(stored[1]["source_index"], stored[2]["source_index"])
    assert not torch.equal(stored[1]["data"], stored[2]["data"])
    real = {tuple(r) for r in gaussian_points(51).tolist()}
    for epoch in range(3):
        ranks = [json.loads((tmp_path / "record2" / f"rank{r}_epoch{epoch}.json").read_text()) for r in (0, 1)]
        single = json.loads((tmp_path / "record1" / f"rank0_epoch{epoch}.json").read_text())
        assert len(ranks[0]) == len(ranks[1]) == 20 and len(single) == 40  # same total as one process
        rows = [tuple(p) for p in ranks[0]] + [tuple(p) for p in ranks[1]]
        assert len(set(rows)) == 40  # no item seen twice, on one rank or across ranks (40 <= 51 items)
        n_synth = sum(r not in real for r in rows)
        assert n_synth == (0 if epoch == 0 else sum(r not in real for r in map(tuple, single)))
        # with the same seed the global draw is the same, so both runs see the same real items
        assert {r for r in rows if r in real} == {tuple(p) for p in single if tuple(p) in real}


def test_failure_on_one_rank_fails_all(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="rank 1 failed: RuntimeError: sampler broke on rank 1"):
        _fit(tmp_path, 2, fail_rank=1)


class CountingModel(GaussianModel):
    """Writes the size of every ``sample`` call, per rank, to ``record_dir``."""

    def __init__(self, record_dir: str):
        super().__init__()
        self.record_dir = record_dir

    def sample(self, num_samples: int, *, generator: Any = None, conditions: Any = None) -> torch.Tensor:
        with open(Path(self.record_dir) / f"rank{self.global_rank}.txt", "a") as f:
            f.write(f"{self.current_epoch} {num_samples}\n")
        return super().sample(num_samples, generator=generator)


def _spawned(tmp_path: Path, callbacks: list[Any]) -> pl.Trainer:
    """A two-process ``ddp_spawn`` trainer on a fresh rendezvous port."""
    os.environ["MASTER_PORT"] = str(find_free_network_port())
    return pl.Trainer(
        default_root_dir=str(tmp_path),
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        max_epochs=-1,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def test_evaluation_samples_are_shared_out_and_gathered(tmp_path: Path) -> None:
    from sclc_lightning.callbacks import PointMetrics
    from sclc_lightning.callbacks.generation_csv import GenerationCSV
    from sclc_lightning.datasets.toy import GaussianDataModule

    loop = SelfConsumingLoop(0.0, 1, images_per_generation=40, output_dir=tmp_path / "s")
    trainer = _spawned(tmp_path, [loop, PointMetrics(num_samples=101, batch_size=30), GenerationCSV()])
    trainer.fit(CountingModel(str(tmp_path)), datamodule=GaussianDataModule(n=51, batch_size=10))
    for rank in (0, 1):  # 51 = ceil(101 / 2) each, in batches of 30, at both generations
        calls = (tmp_path / f"rank{rank}.txt").read_text().split("\n")[:-1]
        assert calls == ["0 30", "0 21", "1 30", "1 21"]
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(float(r["generation"])) for r in rows] == [0, 1]
    assert all(0 <= float(r["frechet"]) < 5 and float(r["time_evaluating_s"]) > 0 for r in rows)


def _mark_worker_start(worker_id: int) -> None:
    folder = os.environ["SCLC_TEST_WORKER_STARTS"]
    Path(folder, f"{os.getpid()}_{worker_id}").touch()


@pytest.mark.slow
def test_persistent_workers_start_once_per_rank_under_ddp_spawn(tmp_path: Path) -> None:
    """Before, every generation started the workers again: 24-27 s a generation with 4 workers
    (benchmarks/loader_start.py); now each rank's workers start once and serve every generation."""
    from torch.utils.data import DataLoader

    from sclc_lightning.callbacks.generation_csv import GenerationCSV

    os.environ["SCLC_TEST_WORKER_STARTS"] = str(tmp_path)
    data = DataLoader(
        gaussian_points(40), batch_size=8, num_workers=2, persistent_workers=True, worker_init_fn=_mark_worker_start
    )
    loop = SelfConsumingLoop(0.5, 3, images_per_generation=32, output_dir=tmp_path / "s")
    trainer = _spawned(tmp_path, [loop, GenerationCSV()])
    trainer.fit(GaussianModel(), train_dataloaders=data)
    with open(tmp_path / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(float(r["num_synthetic"])), int(float(r["num_trained"]))) for r in rows] == [(0, 32)] + [(20, 32)] * 3
    assert len([p for p in tmp_path.iterdir() if "_" in p.name and p.name.split("_")[0].isdigit()]) == 2 * 2


def above_one(data: torch.Tensor, conditions: Any) -> torch.Tensor:
    return data[:, 0]


@pytest.mark.slow
def test_selection_rounds_agree_across_ranks(tmp_path: Path) -> None:
    """A strict verifier needs several rounds; every rank samples each round's share, rank zero
    chooses, and every rank learns how many are still missing (and stops with the same error)."""
    from sclc_lightning.correctors import VerifierCorrector
    from sclc_lightning.store import SyntheticStore

    verify = VerifierCorrector(f"{__name__}:above_one", threshold=1.0)
    loop = SelfConsumingLoop(1.0, 2, images_per_generation=40, output_dir=tmp_path / "s", corrector=verify)
    trainer = _spawned(tmp_path, [loop])
    trainer.fit(GaussianModel(), train_dataloaders=loader(gaussian_points(40)))
    records = SyntheticStore(tmp_path / "s").records()
    assert [r.count for r in records.values()] == [40, 40]
    assert all(r.statistics is not None and r.statistics["oversampling"] > 1.5 for r in records.values())


class WeightsPerRank(GaussianModel):
    """Writes its weights at the end of the fit, per rank."""

    def __init__(self, record_dir: str):
        super().__init__(noise=0.2)
        self.record_dir = record_dir

    def on_train_end(self) -> None:
        path = Path(self.record_dir) / f"weights_rank{self.global_rank}.json"
        path.write_text(json.dumps({"mean": self.mean.tolist(), "log_std": self.log_std.tolist()}))


@pytest.mark.slow
def test_a_weight_space_correction_keeps_the_ranks_equal(tmp_path: Path) -> None:
    from sclc_lightning.correctors import NeonCorrector

    neon = NeonCorrector(weight=0.5, num_samples=64, steps=5, lr=0.05, batch_size=16)
    loop = SelfConsumingLoop(0.5, 2, images_per_generation=40, output_dir=tmp_path / "s", model_corrector=neon)
    trainer = _spawned(tmp_path, [loop])
    trainer.fit(WeightsPerRank(str(tmp_path)), train_dataloaders=loader(gaussian_points(40)))
    ranks = [json.loads((tmp_path / f"weights_rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1] and ranks[0]["mean"] != [0.0, 0.0]


class _SeedOfRank(pl.Callback):
    """Writes the loop's seed as each rank sees it once the fit has started."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from sclc_lightning._trainer import find_loop

        loop: Any = find_loop(trainer)
        (Path(self.folder) / f"seed_rank{trainer.global_rank}").write_text(str(loop.seed))


def test_a_drawn_seed_is_the_same_on_every_rank(tmp_path: Path) -> None:
    os.environ.pop("PL_GLOBAL_SEED", None)  # no seed_everything: the loop draws one on rank zero
    loop = SelfConsumingLoop(0.5, 1, images_per_generation=16, output_dir=tmp_path / "s")
    trainer = _spawned(tmp_path, [loop, _SeedOfRank(str(tmp_path))])
    trainer.fit(GaussianModel(), train_dataloaders=loader(gaussian_points(16)))
    seeds = {(tmp_path / f"seed_rank{rank}").read_text() for rank in (0, 1)}
    assert len(seeds) == 1
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert str(manifest["config"]["seed"]) == seeds.pop()
