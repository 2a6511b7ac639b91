"""Kill -9 with 2 ranks: a 2-process fit (gloo, ``torchrun --standalone``) is killed whole at a
random moment, resumed with ``--ckpt_path last`` (or started again when it had no checkpoint
yet), and compared with an uninterrupted run: the stored generations and the final weights must
be the same bits. The 1-rank kills are ``fault_injection.py --kills``.

Usage::

    python benchmarks/fault_injection_ranks.py --kills 10 [--seed 0] [--work DIR]
        [--corrector kmeans|none|optimal_transport]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sclc_lightning._process import process_tree

ROOT = Path(__file__).resolve().parents[1]
LAYER = """\
data:
  init_args: {n: 200, n_test: 100, batch_size: 32}
loop: {generations: 3, images_per_generation: 20480, initial_images: 2048, CORRECTOR}
model:
  init_args: {hidden: 32, layers: 2, timesteps: 20, sampling_steps: 20}
trainer:
  callbacks: []
  accelerator: cpu
  devices: 2
  strategy:
    class_path: lightning.pytorch.strategies.DDPStrategy
    init_args:
      timeout: 0:00:30
"""


#: ``--corrector``: the loop's corrector in the layer. KMeans works point by point: each rank
#: corrects and writes its own share, global rank zero commits (``sclc_lightning/loop/shares.py``).
CORRECTORS = {
    "kmeans": "corrector: kmeans, corrector_kwargs: {num_clusters: 8, strength: 1.0}",
    "none": "corrector: null",
    "optimal_transport": "corrector: optimal_transport, corrector_kwargs: {strength: 1.0}",
}


def _command(work: Path, run: Path, resume: bool) -> list[str]:
    layer = work / "layer.yaml"
    if not layer.exists():
        raise FileNotFoundError(f"{layer}: main() writes the layer first")
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc-per-node", "2"]
    fit = ["-m", "sclc_lightning.cli", "fit", "--config", str(ROOT / "recipes" / "eight_gaussians_ddpm.yaml")]
    resuming = ["--ckpt_path", "last"] if resume else []
    return [*torchrun, *fit, "--config", str(layer), "--run_dir", str(run), *resuming]


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "disabled", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}


def launch(
    command: list[str], log: Path, env: dict[str, str], cwd: Path, kill_after: float | None
) -> tuple[int, float]:
    """Run ``command`` (output appended to ``log``), killed whole (SIGKILL, every process under
    it) ``kill_after`` seconds in. Its exit code and seconds."""
    started = time.monotonic()
    with open(log, "ab") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        if kill_after is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=kill_after)
            if process.poll() is None:
                for pid in process_tree(process.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        code = process.wait(timeout=600)
    return code, time.monotonic() - started


def _run(work: Path, run: Path, resume: bool, kill_after: float | None = None) -> tuple[int, float]:
    """One launch; killed whole (SIGKILL) ``kill_after`` seconds in. Its exit code and seconds."""
    return launch(_command(work, run, resume), work / f"{run.name}.log", _env(), ROOT, kill_after)


def _result(run: Path) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    shards = sorted((run / "synthetic").glob("gen_*/*.safetensors"))
    stored = {f"{s.parent.name}/{s.name}": load_file(str(s)) for s in shards}
    checkpoint = max(run.glob("**/checkpoints/*.ckpt"), key=lambda p: int(p.name.split("=")[1].split("-")[0]))
    weights = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    return {"stored": stored, "weights": weights}


def _same(first: dict[str, Any], second: dict[str, Any]) -> bool:
    import torch

    def equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    return (
        first["stored"].keys() == second["stored"].keys()
        and all(equal(first["stored"][k], second["stored"][k]) for k in first["stored"])
        and equal(first["weights"], second["weights"])
    )


def kill_and_resume(work: Path, name: str, after: float) -> dict[str, Any]:
    """Kill a 2-rank fit ``after`` seconds in, then resume it until it finishes."""
    run = work / name
    code, _ = _run(work, run, resume=False, kill_after=after)
    killed = code != 0
    resumed_from = "nothing (it finished)"
    if killed:
        checkpoints = list(run.glob("**/checkpoints/*.ckpt"))
        if checkpoints:
            resumed_from = "its last checkpoint"
            code, _ = _run(work, run, resume=True)
        else:  # killed before the first checkpoint: nothing to keep
            resumed_from = "the start (no checkpoint yet)"
            shutil.rmtree(run, ignore_errors=True)
            code, _ = _run(work, run, resume=False)
    return {"killed": killed, "resumed_from": resumed_from, "code": code, "run": run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=None)
    parser.add_argument("--corrector", default="kmeans", choices=sorted(CORRECTORS))
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="sclc-faults-ranks-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "layer.yaml").write_text(LAYER.replace("CORRECTOR", CORRECTORS[args.corrector]))
    code, seconds = _run(work, work / "reference", resume=False)
    assert code == 0, (work / "reference.log").read_text()[-3000:]
    reference = _result(work / "reference")
    print(f"uninterrupted 2-rank fit: {seconds:.1f} s (process start included)")
    rng, good = random.Random(args.seed), 0
    for i in range(args.kills):
        after = rng.uniform(2.0, seconds)
        outcome = kill_and_resume(work, f"kill_{i + 1}", after)
        same = outcome["code"] == 0 and _same(_result(outcome["run"]), reference)
        good += same
        state = "killed" if outcome["killed"] else "finished before the kill"
        print(
            f"  kill {i + 1:>2}: {state} {after:.1f} s in; resumed from {outcome['resumed_from']}:"
            f" {'identical' if same else 'DIFFERENT'}"
        )
    print(f"{args.kills} kills with 2 ranks: {good} identical to the uninterrupted run, {args.kills - good} not")
    return 0 if good == args.kills else 1


if __name__ == "__main__":
    sys.exit(main())
