import csv
from pathlib import Path

import pytest
from helpers import GaussianModel, gaussian_points, loader, trainer

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.callbacks.generation_csv import GenerationCSV


@pytest.mark.parametrize("csv_first", [True, False])
def test_one_row_per_generation_whatever_the_callback_order(tmp_path: Path, csv_first: bool) -> None:
    loop = SelfConsumingLoop(0.5, 2, images_per_generation=20, initial_images=0, output_dir=tmp_path / "s")
    writer = GenerationCSV()
    trainer(tmp_path, [writer, loop] if csv_first else [loop, writer]).fit(
        GaussianModel(), train_dataloaders=loader(gaussian_points(50))
    )
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["generation"] for r in rows] == ["1", "2"]  # generation 0 skipped (initial_images=0)
    assert [r["num_synthetic"] for r in rows] == ["25", "25"] and all(float(r["time_training_s"]) > 0 for r in rows)


class FailingSampler(GaussianModel):
    """Sampling for generation 2 fails, as a kill during sampling would stop it."""

    def sample(self, num_samples, *, generator=None, conditions=None):  # type: ignore[no-untyped-def]
        if self.trainer.current_epoch >= 2:
            raise RuntimeError("killed while sampling")
        return super().sample(num_samples, generator=generator)


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(path)))


def test_row_is_written_before_the_next_generation_is_sampled(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 3, images_per_generation=20, output_dir=tmp_path / "s")
    with pytest.raises(RuntimeError, match="killed while sampling"):
        trainer(tmp_path, [loop, GenerationCSV()]).fit(FailingSampler(), train_dataloaders=loader(gaussian_points(50)))
    assert [r["generation"] for r in _rows(tmp_path / "metrics.csv")] == ["0", "1"]  # generation 1's row too


def test_row_kept_in_the_checkpoint_is_restored_on_resume(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    def run(model: GaussianModel, ckpt_path: str | None = None) -> None:
        loop = SelfConsumingLoop(0.5, 3, images_per_generation=20, output_dir=tmp_path / "s")
        checkpoints = ModelCheckpoint(dirpath=tmp_path / "ck", every_n_epochs=1, save_top_k=-1, filename="{epoch}")
        t = trainer(tmp_path, [checkpoints, GenerationCSV(), loop], enable_checkpointing=True)
        t.fit(model, train_dataloaders=loader(gaussian_points(50)), ckpt_path=ckpt_path)

    with pytest.raises(RuntimeError, match="killed while sampling"):
        run(FailingSampler())
    # a kill after the checkpoint of generation 1 and before its row reached the file
    rows = _rows(tmp_path / "metrics.csv")
    with open(tmp_path / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerow(rows[0])
    run(GaussianModel(), ckpt_path=str(tmp_path / "ck" / "epoch=1.ckpt"))
    rows = _rows(tmp_path / "metrics.csv")
    assert [r["generation"] for r in rows] == ["0", "1", "2", "3"]  # exactly one row per generation
    assert rows[1]["num_synthetic"] == "25" and float(rows[1]["time_training_s"]) > 0
