"""Kill -9 of a fit whose run directory is on object storage: ``sclc fit --run_dir s3://…``
against an S3 endpoint started here (moto's server, nothing leaves the machine), killed whole
at a random moment, then resumed with ``--ckpt_path last`` (or started again on a new URL when
no snapshot holds a checkpoint yet), and compared with an uninterrupted fit on another URL: the
stored generations and the final weights, read back from the store, must be the same bits.
The 2-rank kills on a local folder are ``fault_injection_ranks.py``.

Usage::

    python benchmarks/fault_injection_remote.py --kills 10 [--seed 0] [--work DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import fault_injection_ranks as ranks

from sclc_lightning.store.checkpoints import latest_checkpoint
from sclc_lightning.store.remote import RemoteRunDirectory

LAYER = """\
data:
  init_args: {n: 200, n_test: 100, batch_size: 32}
loop: {generations: 3, images_per_generation: 20480, initial_images: 2048, corrector: kmeans,
       corrector_kwargs: {num_clusters: 8, strength: 1.0}}
model:
  init_args: {hidden: 32, layers: 2, timesteps: 20, sampling_steps: 20}
trainer: {callbacks: [], accelerator: cpu, devices: 1}
"""
BUCKET = "sclc-faults"


def _endpoint() -> Any:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    keys = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", **keys)
    import s3fs

    s3fs.S3FileSystem().mkdir(BUCKET)
    return server


def _launch(work: Path, name: str, resume: bool, kill_after: float | None = None) -> tuple[int, float]:
    """One ``sclc fit`` of ``s3://BUCKET/name``, killed whole ``kill_after`` seconds in."""
    recipe = str(ranks.ROOT / "recipes" / "eight_gaussians_ddpm.yaml")
    fit = [sys.executable, "-m", "sclc_lightning.cli", "fit", "--config", recipe, "--config", str(work / "layer.yaml")]
    fit += ["--run_dir", f"s3://{BUCKET}/{name}"]
    fit += ["--ckpt_path", "last"] if resume else []
    env = {**ranks._env(), "SCLC_RUN_CACHE": str(work / "cache")}
    return ranks.launch(fit, work / f"{name}.log", env, work, kill_after)


def _read(work: Path, name: str) -> Path:
    """The run's latest snapshot, read into a new local folder (each object verified)."""
    local = work / "read" / f"{name}-{time.monotonic_ns()}"
    RemoteRunDirectory(f"s3://{BUCKET}/{name}", local).read()
    return local


def kill_and_resume(work: Path, name: str, after: float) -> dict[str, Any]:
    """Kill a fit ``after`` seconds in, then resume it (or start again) until it finishes."""
    code, _ = _launch(work, name, resume=False, kill_after=after)
    killed, resumed_from = code != 0, "nothing (it finished)"
    if killed and latest_checkpoint(_read(work, name)) is not None:
        resumed_from = "its last snapshot's checkpoint"
        code, _ = _launch(work, name, resume=True)
    elif killed:  # no snapshot holds a checkpoint yet: nothing to keep
        resumed_from, name = "the start (no checkpoint published yet)", f"{name}_again"
        code, _ = _launch(work, name, resume=False)
    return {"killed": killed, "resumed_from": resumed_from, "code": code, "name": name}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=None)
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="sclc-faults-remote-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "layer.yaml").write_text(LAYER)
    server = _endpoint()
    try:
        code, seconds = _launch(work, "reference", resume=False)
        assert code == 0, (work / "reference.log").read_text()[-3000:]
        reference = ranks._result(_read(work, "reference"))
        print(f"uninterrupted fit on s3://: {seconds:.1f} s (process start included)")
        rng, good = random.Random(args.seed), 0
        for i in range(args.kills):
            after = rng.uniform(2.0, seconds)
            outcome = kill_and_resume(work, f"kill_{i + 1}", after)
            same = outcome["code"] == 0 and ranks._same(ranks._result(_read(work, outcome["name"])), reference)
            good += same
            state = "killed" if outcome["killed"] else "finished before the kill"
            print(
                f"  kill {i + 1:>2}: {state} {after:.1f} s in; resumed from {outcome['resumed_from']}:"
                f" {'identical' if same else 'DIFFERENT'}"
            )
    finally:
        server.stop()
    print(f"{args.kills} kills on s3://: {good} identical to the uninterrupted fit, {args.kills - good} not")
    return 0 if good == args.kills else 1


if __name__ == "__main__":
    sys.exit(main())
