"""The ``paper`` suite of ``sclc bench``: the GPU-size recipes with their bench layers.

They cannot run here at their size (no GPU; CIFAR-10, FFHQ, CelebA, TinyStories, OPT-125m and the
Inception weights are not on this machine). What is checked: the suite's plan (which built-in
methods run, which are skipped and why); every task's recipe files instantiate at their size
with the task's setting (lambda, generations, no corrector of its own, the metric's callback);
and a task runs end to end through the bench with a user layer (``layers=`` / ``--config``)
that points it at data the test makes and sizes it down, its metric read from the generation the
task names.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sclc_lightning import bench
from sclc_lightning.bench.runner import plan_bench
from sclc_lightning.bench.tasks import SUITES, TASKS, suite_tasks

ROOT = Path(__file__).parents[2]


def test_the_paper_suite_plans_every_task_with_the_reasons_of_its_skips() -> None:
    assert SUITES["paper"] == (
        "mnist_kmeans",
        "cifar10_ddpm",
        "cifar10_edm",
        "ffhq64_edm",
        "vae_celeba",
        "lm_finetune_opt125m",
        "lm_tinystories",
        "conformers_paper",
        "motion_paper",
    )
    assert not set(SUITES["paper"]) & set(SUITES["standard"])
    plan = plan_bench("paper", builtin=True, seeds="0-1")
    assert {t.name: sorted(plan.arms(t)) for t in plan.tasks if t.name in ("mnist_kmeans", "cifar10_ddpm")} == {
        "mnist_kmeans": sorted(
            ["real_only", "uncorrected", "accumulate", "accumulate_subsample", "fresh", "ot_1", "ot_inf", "kmeans"]
        ),
        "cifar10_ddpm": ["accumulate", "accumulate_subsample", "fresh", "real_only", "uncorrected"],
    }
    skipped = plan.skipped["cifar10_ddpm"]
    assert "Hungarian algorithm is O(m^3) for the m = 50,000" in skipped["ot_inf"]
    assert "no KMeans correction" in skipped["kmeans"] and "needs log_prob" in skipped["verify_likelihood"]
    assert "needs continuous" in plan.skipped["lm_tinystories"]["ot_1"]
    # the task's parts reach its methods: Kazdan et al.'s subsample at n, Gillman et al.'s 16 centres
    arms = plan.arms(TASKS["mnist_kmeans"])
    assert arms["kmeans"].settings_for("mnist_kmeans")["corrector_kwargs"] == {"num_clusters": 16}
    assert arms["accumulate_subsample"].settings_for("mnist_kmeans")["mode_kwargs"] == {"max_synthetic": 4000}
    # a size that rules a built-in out does not rule out the user's own method of the same name
    own = plan_bench("paper", {"ot_1": {"corrector": "optimal_transport"}}, "0-1", tasks=["cifar10_ddpm"])
    assert own.skipped["cifar10_ddpm"] == {}


def _loop_and_callbacks(configs: list[str], tmp_path: Path, extra: list[str]) -> tuple[Any, list[str]]:
    from sclc_lightning.lightning_cli import SCLCCLI

    arguments = [word for config in configs for word in ("--config", config)]
    cli = SCLCCLI([*arguments, *extra, "--run_dir", str(tmp_path / "r")], run=False)
    names = [type(c).__name__ for c in cli.trainer.callbacks]
    return next(c for c in cli.trainer.callbacks if type(c).__name__ == "SelfConsumingLoop"), names


def _tiny_pretrained_opt(folder: Path) -> Path:
    """A tiny OPT saved as a local pretrained model (OPT-125m is not on this machine)."""
    from transformers import OPTConfig, OPTForCausalLM

    config = OPTConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2)
    OPTForCausalLM(config).save_pretrained(folder)
    return folder


# the metric's callback, and what the task's recipe files set (lambda, mode)
PAPER_SETTINGS = {
    "mnist_kmeans": ("ImageMetrics", 0.5, "augment"),
    "cifar10_ddpm": ("ImageMetrics", 1.0, "augment"),
    "cifar10_edm": ("ImageMetrics", 1.0, "augment"),
    "ffhq64_edm": ("ImageMetrics", 1.0, "augment"),
    "vae_celeba": ("HeldOutScores", None, "replace"),
    "lm_finetune_opt125m": ("HeldOutScores", None, "replace"),
    "lm_tinystories": ("HeldOutScores", None, "replace"),
    "conformers_paper": ("HeldOutScores", 1.0, "replace"),
    "motion_paper": ("MotionMetrics", 0.5, "augment"),
}


@pytest.mark.parametrize("name", SUITES["paper"])
def test_every_paper_task_instantiates_at_its_size_with_its_setting(name: str, tmp_path: Path) -> None:
    task = TASKS[name]
    extra = []
    if name in ("vae_celeba", "lm_finetune_opt125m", "lm_tinystories"):
        extra += ["--trainer.accelerator", "cpu"]  # their layers ask for a GPU
    if name == "lm_finetune_opt125m":
        extra += ["--model.init_args.pretrained", str(_tiny_pretrained_opt(tmp_path / "opt"))]
    loop, callbacks = _loop_and_callbacks(task.configs(), tmp_path, extra)
    metric_callback, fraction, mode = PAPER_SETTINGS[name]
    assert loop.generations == task.generation and loop.corrector is None and loop.mode == mode
    if fraction is not None:
        assert loop.synthetic_fraction == fraction
    assert metric_callback in callbacks and "SampleFigures" not in callbacks  # the metric only
    assert task.digest().startswith("sha256:") and task.suites == ("paper",)


def _images(folder: Path, count: int = 40) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")).save(folder / f"{i}.png")
    return folder


def _cifar_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What a user's layer would say to run cifar10_ddpm somewhere else: the data's folder, the
    Inception file, and (here) a tiny UNet on one batch per generation."""
    from tests.metrics.test_image_metrics import _random_inception_weights

    weights = _random_inception_weights(tmp_path / "inception.pth", monkeypatch)  # random values: not the real file
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    layer = {
        "model": {
            "init_args": {
                "block_out_channels": [32, 32],
                "layers_per_block": 1,
                "attention": False,
                "sampling_steps": 2,
                "ema_decay": None,
            }
        },
        "data": {
            "class_path": "sclc_lightning.datasets.images.ImageFolderDataModule",
            "init_args": {
                "root": str(_images(tmp_path / "images")),
                "resolution": 32,
                "batch_size": 32,
                "num_workers": 0,
            },
        },
        "loop": {"initial_images": 32, "images_per_generation": 32, "sample_batch_size": 64},
        "trainer": {
            "accelerator": "cpu",
            "precision": "32-true",
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "callbacks": [
                {
                    "class_path": "sclc_lightning.callbacks.ImageMetrics",
                    "init_args": {
                        "num_samples": 8,
                        "every": 5,  # generations 0 and 5: the one the task reads
                        "feature": "inception",
                        "reference": "train",
                        "batch_size": 8,
                        "inception_weights": str(weights),
                        "inception_sha256": digest,
                        "cache_dir": str(tmp_path / "cache"),
                    },
                }
            ],
        },
    }
    path = tmp_path / "here.yaml"
    path.write_text(yaml.safe_dump(layer))
    return path


def test_a_paper_task_runs_through_the_bench_with_a_users_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cifar10_ddpm (lambda = 1, read at generation 5) with a layer that sizes it for a CPU: both
    reference arms run 2 seeds (about 15 s a point here), the FID is read at generation 5, optimal
    transport is skipped with its reason, and the layer is part of the task's digest."""
    layer = _cifar_layer(tmp_path, monkeypatch)
    out = tmp_path / "bench"
    card = bench.run(
        "paper",
        seeds="0-1",
        out=out,
        builtin=["ot_1"],
        tasks=["cifar10_ddpm"],
        layers=[layer],
        jobs=2,
        figures=False,
    )
    task = card["tasks"]["cifar10_ddpm"]
    copy = out / task["recipe"][-1]  # the layer's copy in the bench, named relative to it
    assert task["recipe"][-1].startswith("layers/") and copy.read_bytes() == layer.read_bytes()
    assert task["digest"] != TASKS["cifar10_ddpm"].digest()
    assert task["metric"] == "fid" and task["generation"] == 5
    arms = task["methods"]
    assert arms["ot_1"]["status"] == "skipped" and "Hungarian" in arms["ot_1"]["reason"]
    for name in ("real_only", "uncorrected"):
        assert arms[name]["status"] == "ok" and len(arms[name]["values"]) == 2, (name, arms[name])
    rows = (out / "runs" / "cifar10_ddpm" / "method=uncorrected_seed=0" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    synthetic = [int(float(r.split(",")[header.index("num_synthetic")])) for r in rows[1:]]
    assert synthetic == [0, 38, 38, 38, 38, 38]  # lambda = 1: as many generated images as the 38 real ones
    assert json.loads((out / "bench_spec.json").read_text())["tasks"]["cifar10_ddpm"] == task["digest"]


def test_a_layer_is_refused_before_anything_runs_when_it_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml is not a file"):
        bench.run("paper", seeds="0-1", out=tmp_path / "b", tasks=["cifar10_ddpm"], layers=[tmp_path / "missing.yaml"])
    with pytest.raises(ValueError, match="`layers` must be a list of YAML files"):
        bench.run("paper", seeds="0-1", out=tmp_path / "b", tasks=["cifar10_ddpm"], layers="here.yaml")  # type: ignore[arg-type]
    assert not (tmp_path / "b").exists()


def test_every_suite_is_built() -> None:
    assert [t.name for t in suite_tasks("paper")] == list(SUITES["paper"])
    with pytest.raises(ValueError, match="No suite 'papers'"):
        suite_tasks("papers")


def test_the_command_takes_layers_and_names_a_missing_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sclc_lightning.bench.main import main

    words = ["run", "--suite", "paper", "--task", "cifar10_ddpm", "--seeds", "0-1", "--out", str(tmp_path / "b")]
    with pytest.raises(SystemExit) as ended:
        main([*words, "--config", str(tmp_path / "cluster.yaml")])
    assert ended.value.code == 2 and "cluster.yaml is not a file" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
