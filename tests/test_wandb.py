"""A small recipe logs to W&B offline: per-generation metrics, counts, config and sample figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import wandb_offline_records

from sclc_lightning.cli import main

RECIPES = Path(__file__).parents[1] / "recipes"


def test_recipe_logs_each_generation_to_wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path / "run"
    args = [
        "fit",
        "--config",
        str(RECIPES / "two_moons_cfm.yaml"),
        "--run_dir",
        str(run_dir),
        "--loop.generations",
        "2",
        "--loop.images_per_generation",
        "2560",
        "--loop.initial_images",
        "2560",
    ]
    assert main(args) == 0  # returns once the offline run's file is complete
    records = wandb_offline_records(run_dir)
    history = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            history.append({item.key or "/".join(item.nested_key): item.value_json for item in record.history.item})
    per_generation = [h for h in history if "generation" in h]
    assert [float(h["generation"]) for h in per_generation] == [0.0, 1.0, 2.0]
    assert [float(h["num_synthetic"]) for h in per_generation] == [0.0, 1000.0, 1000.0]
    assert all(float(h["num_real"]) == (1000.0 if i == 0 else 0.0) for i, h in enumerate(per_generation))
    frechet = [h for h in history if "frechet" in h]
    assert len(frechet) == 3 and all(float(h["frechet"]) >= 0 for h in frechet)
    images = [h for h in history if "samples/_type" in h]  # nested keys come flattened
    assert len(images) == 3 and all(json.loads(h["samples/_type"]) == "images/separated" for h in images)
    config = {}
    for record in records:
        if record.WhichOneof("record_type") == "config":
            config.update({u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in record.config.update})
    assert config["loop"]["synthetic_fraction"] == 1.0 and config["loop"]["mode"] == "replace"
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [f"generation_000{g}.png" for g in range(3)]
    # the run's sample pictures reach the report page
    from sclc_lightning.report import write_report

    page = write_report([run_dir], tmp_path / "report").read_text()
    assert "Samples across generations" in page and "generation_0002" in page and "frechet" in page
