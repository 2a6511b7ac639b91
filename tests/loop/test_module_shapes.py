"""The loop around modules of the shapes users bring (tests/shapes.py): a token LM whose targets
derive from its inputs (two conventions), a GAN with manual optimization, a model-zoo VAE whose
``sample`` means something else. Each runs every mode, resumes bit-identically after a crash,
and every synthetic item's targets come from its own data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import CrashAt, gaussian_points, trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from shapes import GAN, Digits16, HFTokens, ShiftTokens, TokenLM, ZooVAE
from torch.utils.data import DataLoader

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.items.contract import IGNORE_INDEX, ItemContractError
from sclc_lightning.sampler import SamplerError

N = 48


def shape(name: str) -> tuple[Any, DataLoader[Any], dict[str, Any]]:
    """A module, its real data and the loop settings that say how its items are built."""
    if name == "hf_lm":
        data = DataLoader(HFTokens(N), batch_size=8, shuffle=True)
        return TokenLM("hf"), data, {"data_field": "input_ids", "fields": {"labels": "data"}}
    if name == "shift_lm":
        return TokenLM("shift"), DataLoader(ShiftTokens(N), batch_size=8, shuffle=True), {"fields": {1: "shift"}}
    if name == "gan":
        return GAN(), DataLoader(gaussian_points(N), batch_size=8, shuffle=True), {}
    assert name == "zoo_vae"
    data = DataLoader(Digits16(N), batch_size=8, shuffle=True)
    return ZooVAE(), data, {"data_field": "image", "sampler": "generate"}


def targets_from_own_data(name: str, batch: Any) -> bool:
    """Whether every item of ``batch`` has the targets its own inputs imply."""
    if name == "hf_lm":
        return bool(torch.equal(batch["labels"], batch["input_ids"]))
    if name == "shift_lm":
        x, y = batch
        return bool(torch.equal(y[:, :-1], x[:, 1:]) and ((y[:, -1] == IGNORE_INDEX) | (y[:, -1] >= 0)).all())
    return True


class Batches(Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, Any]] = []

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.seen.append((trainer.current_epoch, batch))


MODES = {
    "augment": ({}, [(N, 0), (N, 24), (N, 24)]),
    "accumulate": ({}, [(N, 0), (N, 24), (N, 48)]),
    "replace": ({}, [(N, 0), (0, 24), (0, 24)]),
    "fresh": ({"mode_kwargs": {"real_per_generation": 24}}, [(24, 0), (24, 12), (24, 12)]),
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", ["hf_lm", "shift_lm", "gan", "zoo_vae"])
def test_every_shape_runs_every_mode_with_targets_from_its_own_data(tmp_path: Path, name: str, mode: str) -> None:
    torch.manual_seed(0)
    module, data, settings = shape(name)
    extra, expected = MODES[mode]
    spy = Batches()
    loop = SelfConsumingLoop(
        0.5, 2, images_per_generation=32, mode=mode, output_dir=tmp_path / "s", **settings, **extra
    )
    trainer(tmp_path, [loop, spy]).fit(module, data)
    assert [(r.num_real, r.num_synthetic) for r in loop.history] == expected
    assert len(spy.seen) == 3 * 4 and all(targets_from_own_data(name, batch) for _, batch in spy.seen)


def test_synthetic_token_items_are_the_models_own_with_their_own_targets(tmp_path: Path) -> None:
    """In replace mode every item of generation 1 is synthetic: its labels are its input_ids (the
    default 'copy' would have given 32 of 32 items another item's targets)."""
    module, data, settings = shape("hf_lm")
    spy = Batches()
    loop = SelfConsumingLoop(2.0, 1, images_per_generation=32, mode="replace", output_dir=tmp_path / "s", **settings)
    trainer(tmp_path, [loop, spy]).fit(module, data)
    synthetic = [batch for epoch, batch in spy.seen if epoch == 1]
    real = {tuple(row.tolist()) for row in HFTokens(N).blocks}
    inputs = torch.cat([b["input_ids"] for b in synthetic])
    assert len(inputs) == 32 and torch.equal(torch.cat([b["labels"] for b in synthetic]), inputs)
    assert sum(tuple(row.tolist()) not in real for row in inputs) > 16  # the model's own sequences, not copies


@pytest.mark.parametrize("name", ["hf_lm", "shift_lm", "gan", "zoo_vae"])
def test_every_shape_resumes_bit_identically_after_a_crash(tmp_path: Path, name: str) -> None:
    def run(folder: str, crash: bool, ckpt_path: str | None = None) -> Any:
        torch.manual_seed(0)
        module, data, settings = shape(name)
        loop = SelfConsumingLoop(
            0.5, 3, images_per_generation=16, mode="accumulate", output_dir=tmp_path / folder / "s", **settings
        )
        saver = ModelCheckpoint(dirpath=tmp_path / folder / "ck", save_top_k=-1, filename="{epoch}")
        callbacks = [loop, saver, *([CrashAt(2)] if crash else [])]
        t = trainer(tmp_path / folder, callbacks, enable_checkpointing=True)
        t.fit(module, data, ckpt_path=ckpt_path)
        return module

    full = run("full", crash=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run("crashed", crash=True)
    resumed = run("crashed", crash=False, ckpt_path=str(tmp_path / "crashed" / "ck" / "epoch=1.ckpt"))
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_token_correctors_keep_tokens_and_targets(tmp_path: Path) -> None:
    """kmeans on tokens: medoids, real sequences (γ = ∞); the labels follow the corrected tokens."""
    module, data, settings = shape("hf_lm")
    spy = Batches()
    loop = SelfConsumingLoop(
        1.0,
        1,
        images_per_generation=48,
        mode="replace",
        corrector="kmeans",
        corrector_kwargs={"num_clusters": 4},
        output_dir=tmp_path / "s",
        **settings,
    )
    trainer(tmp_path, [loop, spy]).fit(module, data)
    inputs = torch.cat([b["input_ids"] for epoch, b in spy.seen if epoch == 1])
    assert inputs.dtype == torch.int64 and len({tuple(r.tolist()) for r in inputs}) <= 4
    real = {tuple(row.tolist()) for row in HFTokens(N).blocks}
    assert all(tuple(row.tolist()) in real for row in inputs)
    assert all(targets_from_own_data("hf_lm", b) for _, b in spy.seen)


def test_the_zoo_vae_sample_is_refused_before_generation_0_with_the_fix(tmp_path: Path) -> None:
    module, data, _ = shape("zoo_vae")
    loop = SelfConsumingLoop(0.5, 1, data_field="image", output_dir=tmp_path / "s")
    spy = Batches()
    with pytest.raises(SamplerError, match=r"ZooVAE.sample\(mu: 'Tensor', log_var: 'Tensor'\).*sampler='generate'"):
        trainer(tmp_path, [loop, spy]).fit(module, data)
    assert spy.seen == [] and not (tmp_path / "s").exists()


def test_token_items_without_a_rule_are_refused_before_generation_0(tmp_path: Path) -> None:
    for name, match in [
        ("hf_lm", r"Field 'labels' equals the data field 'input_ids'.*fields=\{'labels': 'data'\}"),
        ("shift_lm", r"Field 1 is the data field shifted by one position 0.*fields=\{1: 'shift'\}"),
    ]:
        module, data, settings = shape(name)
        settings.pop("fields")
        spy = Batches()
        loop = SelfConsumingLoop(0.5, 1, output_dir=tmp_path / name, **settings)
        with pytest.raises(ItemContractError, match=match):
            trainer(tmp_path, [loop, spy]).fit(module, data)
        assert spy.seen == [] and not (tmp_path / name).exists()


def test_the_token_shape_resumes_bit_identically_after_kill_9(tmp_path: Path) -> None:
    """A real SIGKILL while generation 2 samples (kmeans on tokens, derived labels), then a resume
    from the last checkpoint: the weights of an uninterrupted run, bit for bit, and the stored
    labels still the stored tokens."""
    import subprocess
    import sys

    from safetensors.torch import load_file
    from shapes import token_fit

    full = token_fit(str(tmp_path / "full"))
    tests = str(Path(__file__).parents[1])
    cut = str(tmp_path / "cut")
    code = f"import sys; sys.path.insert(0, {tests!r}); import shapes; shapes.token_fit({cut!r}, kill_at_call=3)"
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    checkpoints = sorted((tmp_path / "cut" / "ck").glob("epoch=*.ckpt"))
    assert [p.name for p in checkpoints] == ["epoch=0.ckpt", "epoch=1.ckpt"]
    resumed = token_fit(str(tmp_path / "cut"), ckpt_path=str(checkpoints[-1]))
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    for generation in (1, 2, 3):
        stored = load_file(str(tmp_path / "cut" / "s" / f"gen_{generation:04d}" / "shard_00000.safetensors"))
        assert torch.equal(stored["field.labels"], stored["data"])
