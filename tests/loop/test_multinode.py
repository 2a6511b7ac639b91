"""Several nodes, proven on one machine: the same tiny run launched three ways with the gloo
backend gives bit-identical stored generations and weights.

1. one node x 2 processes (``torchrun --standalone --nproc-per-node 2``);
2. 2 "nodes" x 1 process each, through ``torchrun --nnodes 2 --node-rank 0/1`` and a c10d
   rendezvous on 127.0.0.1;
3. 2 tasks with the environment ``srun`` gives a 2-node job (``SLURM_NODEID`` 0 and 1,
   ``SLURM_LOCALID`` 0 on each), which Lightning's ``SLURMEnvironment`` reads.

The model is the eight-Gaussians DDPM (gradient-trained: the exact-fit models refuse more than one
process), sized to seconds. Every process is a cold ``sclc fit``: about 10 s each here.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
TINY = """\
data:
  init_args: {n: 200, n_test: 100, batch_size: 32}
loop: {generations: 2, images_per_generation: 256, initial_images: 256}
model:
  init_args: {hidden: 32, layers: 2, timesteps: 20, sampling_steps: 20}
trainer:
  callbacks: []
  strategy: ddp
  accelerator: cpu
"""
TIMEOUT_S = 300


def _fit(tmp_path: Path, run: str, devices: int, nodes: int, *extra: str) -> list[str]:
    layer = tmp_path / "tiny.yaml"
    layer.write_text(TINY)
    recipe = ROOT / "recipes" / "eight_gaussians_ddpm.yaml"
    return [
        *("-m", "sclc_lightning.cli", "fit", "--config", str(recipe), "--config", str(layer)),
        *("--trainer.devices", str(devices), "--trainer.num_nodes", str(nodes), "--run_dir", str(tmp_path / run)),
        *extra,
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "MASTER_", "TORCHELASTIC_"))}
    return {**env, "WANDB_MODE": "disabled", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", **extra}


def _wait(processes: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    try:
        codes = [p.wait(timeout=TIMEOUT_S) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
    assert codes == [0] * len(processes), tails


def _start(arguments: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(arguments, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def _one_node_two_processes(tmp_path: Path) -> None:
    torchrun = [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2"]
    log = tmp_path / "one_node.log"
    _wait([_start([*torchrun, *_fit(tmp_path, "one_node", 2, 1)], log, _env())], [log])


def _start_torchrun_nodes(
    tmp_path: Path, run: str, *extra: str, label: str = "torchrun"
) -> tuple[list[subprocess.Popen[bytes]], list[Path]]:
    port, started, logs = _free_port(), [], []
    for node in (0, 1):
        torchrun = [
            *(str(BIN / "torchrun"), "--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "1"),
            *("--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"sclc-{label}"),
            *("--rdzv-conf", f"is_host={node == 0}"),  # node 0 holds the rendezvous store, as on a cluster
        ]
        logs.append(tmp_path / f"{label}_node{node}.log")
        env = _env()
        started.append(
            subprocess.Popen(
                [*torchrun, *_fit(tmp_path, run, 1, 2, *extra)],
                stdout=open(logs[-1], "wb"),
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
                start_new_session=True,  # a node: its agent and its worker, killed together
            )
        )
    return started, logs


def _kill_node(agent: int) -> None:
    """SIGKILL a "node": its torchrun agent and every process under it (torchrun starts its
    workers in sessions of their own)."""
    import signal

    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    doomed, grown = {agent}, True
    while grown:
        found = {pid for pid, parent in parents.items() if parent in doomed} - doomed
        grown = bool(found)
        doomed |= found
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _torchrun_two_nodes(tmp_path: Path) -> None:
    _wait(*_start_torchrun_nodes(tmp_path, "torchrun"))


def _slurm_env(node: int, port: int) -> dict[str, str]:
    """What ``srun`` sets for task ``node`` of a 2-node job with one task per node."""
    return {
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_NNODES": "2",
        "SLURM_PROCID": str(node),
        "SLURM_NODEID": str(node),
        "SLURM_LOCALID": "0",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "sclc",
        "SLURM_NODELIST": "127.0.0.1",
        "MASTER_PORT": str(port),
    }


def _slurm_two_nodes(tmp_path: Path) -> None:
    port, started, logs = _free_port(), [], []
    for node in (0, 1):
        env = _env(**_slurm_env(node, port))
        logs.append(tmp_path / f"slurm_node{node}.log")
        started.append(_start([sys.executable, *_fit(tmp_path, "slurm", 1, 2)], logs[-1], env))
    _wait(started, logs)


def test_on_two_nodes_every_file_of_the_run_follows_the_global_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rank arithmetic of the slow tests, in the default suite: with SLURM's environment of a
    2-node job, each node's task is local rank 0, and only its global rank tells them apart.
    Nothing of the run (its lock, records, exchange files, draws, shares of work) may follow the
    local or node rank, or both nodes would act as rank 0 on the shared folder."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    from sclc_lightning.loop.exchange import Exchange

    seen = []
    for node in (0, 1):
        for key, value in _slurm_env(node, 29500).items():
            monkeypatch.setenv(key, value)
        environment = SLURMEnvironment()
        environment.validate_settings(num_devices=1, num_nodes=2)
        seen.append((environment.world_size(), environment.global_rank(), environment.node_rank()))
        assert environment.local_rank() == 0
    assert seen == [(2, 0, 0), (2, 1, 1)]
    exchange = Exchange(Path("/shared/run"), real=None)  # type: ignore[arg-type]
    names = {exchange.path(3, 0, rank).name for rank in (0, 1)}
    assert names == {"gen_0003_part_000_rank_00000.safetensors", "gen_0003_part_000_rank_00001.safetensors"}
    package = ROOT / "sclc_lightning"
    readers = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted(package.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if any(word in line for word in ("local_rank", "node_rank", "LOCAL_RANK", "NODE_RANK", "SLURM_LOCALID"))
    ]
    assert readers == []


def _stored(run: Path, generations: int = 2, complete: bool = True) -> dict[str, dict[str, torch.Tensor]]:
    shards = sorted((run / "synthetic").glob("gen_*/*.safetensors"))
    if complete:  # each rank writes its own share's shards (no corrector): one per rank and generation
        expected = [f"gen_{g:04d}" for g in range(1, generations + 1) for _ in range(2)]
        assert [s.parent.name for s in shards] == expected, shards
    return {f"{s.parent.name}/{s.name}": load_file(str(s)) for s in shards}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    checkpoint = max(run.glob("**/checkpoints/*.ckpt"), key=lambda p: int(p.name.split("=")[1].split("-")[0]))
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]


def _same(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow  # three launches of 2 cold processes: about a minute on 2 cores
def test_one_node_torchrun_nodes_and_slurm_nodes_store_the_same_bits(tmp_path: Path) -> None:
    _one_node_two_processes(tmp_path)
    _torchrun_two_nodes(tmp_path)
    _slurm_two_nodes(tmp_path)
    reference = _stored(tmp_path / "one_node")
    weights = _weights(tmp_path / "one_node")
    for run in ("torchrun", "slurm"):
        stored = _stored(tmp_path / run)
        assert stored.keys() == reference.keys()
        assert all(_same(stored[name], reference[name]) for name in reference), run
        assert _same(_weights(tmp_path / run), weights), run
    # the two-node runs really were two nodes: Lightning saw node ranks 0 and 1
    assert "SLURM auto-requeueing enabled" in (tmp_path / "slurm_node0.log").read_text()


# generations of a few seconds (a kill lands inside one), and a 10 s process-group timeout: the
# default (30 min) would keep the surviving node waiting for the lost one that long
LONGER = ("--loop.generations", "3", "--loop.images_per_generation", "40960")
SHORT_TIMEOUT = """\
trainer:
  strategy:
    class_path: lightning.pytorch.strategies.DDPStrategy
    init_args:
      timeout: 0:00:10
"""


@pytest.mark.slow  # three 2-node launches: about a minute on 2 cores
def test_a_node_lost_mid_generation_stops_the_run_and_the_rerun_resumes_bit_identically(tmp_path: Path) -> None:
    import time

    (tmp_path / "timeout.yaml").write_text(SHORT_TIMEOUT)
    longer = (*LONGER, "--config", str(tmp_path / "timeout.yaml"))
    reference, logs = _start_torchrun_nodes(tmp_path, "reference", *longer, label="reference")
    _wait(reference, logs)
    started, logs = _start_torchrun_nodes(tmp_path, "killed", *longer, label="killed")
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not (tmp_path / "killed" / "synthetic" / "gen_0002").exists():  # generation 2 has begun
            assert time.monotonic() < deadline and all(p.poll() is None for p in started), logs
            time.sleep(0.05)
        _kill_node(started[1].pid)  # node 1: its agent and its worker at once
        lost = time.monotonic()
        code = started[0].wait(timeout=120)
        stopped_after = time.monotonic() - lost
    finally:
        for p in started:
            if p.poll() is None:
                _kill_node(p.pid)
    said = logs[0].read_text()
    print(f"node 0 stopped {stopped_after:.1f} s after node 1 was lost (exit code {code})")
    assert code != 0 and stopped_after < 60, (code, stopped_after, said[-3000:])
    assert "Trainer.fit` stopped" not in said and not (tmp_path / "killed" / "synthetic" / "gen_0003").exists()
    resumed, logs = _start_torchrun_nodes(tmp_path, "killed", *longer, "--ckpt_path", "last", label="resumed")
    _wait(resumed, logs)
    first, second = _stored(tmp_path / "reference", 3), _stored(tmp_path / "killed", 3)
    assert first.keys() == second.keys() and all(_same(first[k], second[k]) for k in first)
    assert _same(_weights(tmp_path / "killed"), _weights(tmp_path / "reference"))
