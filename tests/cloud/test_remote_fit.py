"""``sclc fit --run_dir s3://bucket/run`` against the S3 endpoint the tests start: it trains,
publishes a snapshot at each generation's end, is stopped hard after it wrote a generation it
never published, resumes with ``--ckpt_path last`` from the last snapshot to the bits of the
uninterrupted fit, and ``sclc report`` reads it. The SIGKILL version, with a gradient-trained
model in its own processes, is ``test_remote_fit_killed_with_sigkill`` (slow)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from sclc_lightning._process import process_tree
from sclc_lightning.cli import main
from sclc_lightning.store.checkpoints import latest_checkpoint
from sclc_lightning.store.remote import RemoteRunDirectory, local_cache

ROOT = Path(__file__).parents[2]
RECIPE = str(ROOT / "recipes" / "gaussian_collapse.yaml")


def _fit(url: str, *extra: str) -> int:
    return main(["fit", "--config", RECIPE, "--wandb", "false", "--loop.generations", "4", "--run_dir", url, *extra])


def _read(url: str, local: Path) -> dict[str, Any]:
    remote = RemoteRunDirectory(url, local)
    remote.read()
    shards = {p.relative_to(local).as_posix(): p.read_bytes() for p in sorted(local.glob("synthetic/gen_*/*"))}
    checkpoint = latest_checkpoint(local)
    assert checkpoint is not None and checkpoint.suffix == ".ckpt" and local in checkpoint.parents, (local, checkpoint)
    weights = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    return {"shards": shards, "weights": weights}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (
        a["shards"] == b["shards"]
        and a["weights"].keys() == b["weights"].keys()
        and all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    )


def test_a_fit_on_s3_is_stopped_hard_resumes_bit_identically_and_is_reported(
    s3_bucket: tuple[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sclc_lightning.callbacks.remote import RemoteSync
    from sclc_lightning.loop.production import SyntheticProducer
    from sclc_lightning.report.main import main as report

    bucket, fs = s3_bucket
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCLC_RUN_CACHE", str(tmp_path / "cache"))
    assert _fit(f"s3://{bucket}/straight") == 0

    # stopped hard inside generation 3, after its data was written locally, before any snapshot of it
    made = SyntheticProducer.ensure

    def stopped(self: Any, trainer: Any, module: Any, generation: int, *args: Any, **kwargs: Any) -> Any:
        produced = made(self, trainer, module, generation, *args, **kwargs)
        if generation == 3:
            raise RuntimeError("killed")
        return produced

    with monkeypatch.context() as patch:
        patch.setattr(SyntheticProducer, "ensure", stopped)
        patch.setattr(RemoteSync, "on_exception", lambda *args: None)  # a kill publishes nothing
        with pytest.raises(RuntimeError, match="killed"):
            _fit(f"s3://{bucket}/killed")
    work = local_cache(f"s3://{bucket}/killed")  # the killed fit's local folder holds generation 3 ...
    snapshots = sorted(Path(p).name for p in fs.ls(f"{bucket}/killed/snapshots"))
    assert any(p.name == "gen_0003" for p in work.rglob("gen_*")), "the stop came too late to test anything"
    # ... which no snapshot names; the resume starts from the last snapshot, and drops it
    said: list[str] = []  # Lightning's rank-zero logger, whatever an earlier test made of its propagation
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        assert _fit(f"s3://{bucket}/killed", "--ckpt_path", "last") == 0
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert f"sclc: s3://{bucket}/killed (snapshot {len(snapshots)} pulled) is worked on in {work}." in said

    # each snapshot after the first, published as a generation starts training, holds its data and
    # the checkpoint of the generation before (so a kill inside generation g resumes from g - 1's end)
    for path in sorted(fs.ls(f"{bucket}/straight/snapshots"))[1:-1]:
        files = json.loads(fs.cat_file(path))["files"]
        newest = max(int(f.split("/")[1][4:]) for f in files if f.startswith("synthetic/gen_"))
        epochs = [int(f.split("epoch=")[1].split("-")[0]) for f in files if "epoch=" in f]
        assert max(epochs) == newest - 1, (path, newest, epochs)

    straight = _read(f"s3://{bucket}/straight", tmp_path / "a")
    resumed = _read(f"s3://{bucket}/killed", tmp_path / "b")
    assert [name.split("/")[1] for name in straight["shards"]] == ["gen_0001", "gen_0002", "gen_0003", "gen_0004"]
    assert _same(straight, resumed)

    assert report([f"s3://{bucket}/killed", "--out", str(tmp_path / "report")]) == 0
    html = (tmp_path / "report" / "report.html").read_text()
    assert "killed" in html  # the run named like its URL, not like the cache folder


def test_a_refused_fit_publishes_nothing_and_an_outage_is_ridden_out(
    s3_bucket: tuple[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sclc_lightning.store.remote import RemoteRunDirectory as Remote

    bucket, fs = s3_bucket
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCLC_RUN_CACHE", str(tmp_path / "cache"))
    url = f"s3://{bucket}/run"
    assert _fit(url) == 0
    published = fs.ls(f"{bucket}/run/snapshots")
    # refused at set-up (the run's data is there and this is no resume): its config.yaml is never published
    assert _fit(url, "--loop.synthetic_fraction", "0.5") == 2
    assert "already holds the synthetic data" in capsys.readouterr().err
    fs.invalidate_cache(f"{bucket}/run/snapshots")
    assert fs.ls(f"{bucket}/run/snapshots") == published

    # the store unreachable for one snapshot: said, and the next one publishes everything since
    pushed = Remote.push
    calls = []

    def flaky(self: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("the endpoint went away")
        return pushed(self)

    monkeypatch.setattr(Remote, "push", flaky)
    with pytest.warns(UserWarning, match=r"publishing \(generation 1 made\) failed: ConnectionError"):
        assert _fit(f"s3://{bucket}/flaky") == 0
    assert _read(f"s3://{bucket}/flaky", tmp_path / "flaky")["shards"] == _read(url, tmp_path / "run")["shards"]
    # ... but the fit's end must be published, or the fit says it failed
    monkeypatch.setattr(Remote, "push", lambda self: (_ for _ in ()).throw(ConnectionError("down")))
    assert _fit(f"s3://{bucket}/down") == 2
    assert "the fit's end is unpublished: rerun with --ckpt_path last" in capsys.readouterr().err


def test_a_second_fit_on_the_same_url_is_refused_and_a_missing_bucket_said(
    s3_bucket: tuple[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket, _ = s3_bucket
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCLC_RUN_CACHE", str(tmp_path / "cache"))
    holder = RemoteRunDirectory(f"s3://{bucket}/run", tmp_path / "elsewhere").open()
    assert _fit(f"s3://{bucket}/run") == 2
    assert "is being written by another fit" in capsys.readouterr().err
    holder.close()
    assert _fit("s3://no-such-bucket-sclc/run") == 2
    said = capsys.readouterr().err
    assert "s3://no-such-bucket-sclc/run cannot be read or written" in said and "Traceback" not in said


@pytest.mark.slow
def test_remote_fit_killed_with_sigkill(s3_bucket: tuple[str, Any], tmp_path: Path) -> None:
    """The eight-Gaussians DDPM (gradient-trained), `sclc fit --run_dir s3://…` in its own
    process, SIGKILLed as soon as its 2nd, then (another run) its 4th snapshot is published (so
    inside the next generation, its data ahead of the store), resumed with `--ckpt_path last`
    from the same machine (the lease lapses at once: its process is gone)."""
    bucket, fs = s3_bucket
    layer = tmp_path / "layer.yaml"
    layer.write_text(
        "data: {init_args: {n: 200, n_test: 100, batch_size: 32}}\n"
        "loop: {generations: 4, images_per_generation: 8192, initial_images: 2048}\n"
        "model: {init_args: {hidden: 32, layers: 2, timesteps: 20, sampling_steps: 20}}\n"
        "trainer: {callbacks: []}\n"
    )
    env = {**os.environ, "SCLC_RUN_CACHE": str(tmp_path / "cache"), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}

    def published(name: str) -> int:
        fs.invalidate_cache(f"{bucket}/{name}/snapshots")
        with contextlib.suppress(FileNotFoundError):
            return len(fs.ls(f"{bucket}/{name}/snapshots"))
        return 0

    def launch(name: str, *extra: str, kill_at: int | None = None) -> int:
        recipe = str(ROOT / "recipes" / "eight_gaussians_ddpm.yaml")
        command = [sys.executable, "-m", "sclc_lightning.cli", "fit", "--config", recipe, "--config", str(layer)]
        command += ["--run_dir", f"s3://{bucket}/{name}", *extra]
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while kill_at is not None and process.poll() is None and published(name) < kill_at:
            time.sleep(0.05)
        if kill_at is not None:
            for pid in process_tree(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        _, err = process.communicate(timeout=600)
        assert kill_at is not None or process.returncode == 0, err.decode()[-3000:]
        return process.returncode

    launch("straight")
    reference = _read(f"s3://{bucket}/straight", tmp_path / "reference")
    for kill_at in (2, 4):
        name = f"killed_at_{kill_at}"
        assert launch(name, kill_at=kill_at) != 0, "the fit ended before its kill"
        assert published(name) == kill_at  # nothing published after the kill ...
        assert launch(name, "--ckpt_path", "last") == 0  # ... the resume pulls that state and goes on
        assert _same(_read(f"s3://{bucket}/{name}", tmp_path / f"read_{kill_at}"), reference), name
