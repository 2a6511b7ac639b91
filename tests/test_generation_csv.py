import csv
from pathlib import Path

import pytest
from helpers import GaussianModel, gaussian_points, loader, trainer

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.generation_csv import GenerationCSV


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
