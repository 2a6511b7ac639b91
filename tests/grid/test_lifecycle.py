"""``sclc grid`` as a process: exit status, SIGTERM, rerun into the same ``--out``."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sclc_lightning._process import pid_alive
from sclc_lightning.grid import expand_grid

ROOT = Path(__file__).parents[2]
POINTS = str(ROOT / "recipes" / "eight_gaussians_ddpm.yaml")
SMALL = [
    "--model.init_args.hidden", "32", "--model.init_args.timesteps", "20", "--model.init_args.sampling_steps", "20",
    "--data.init_args.n", "160", "--data.init_args.n_test", "160", "--data.init_args.batch_size", "16",
    "--loop.generations", "2", "--loop.images_per_generation", "9600", "--loop.initial_images", "9600",
    "--trainer.callbacks", "[]", "--wandb", "false",
]  # fmt: skip


def _grid(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "sclc_lightning.cli", "grid", "--config", POINTS, "--out", str(out), *args]


def _table(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "runs.csv", newline="") as handle:
        return {row["name"]: row for row in csv.DictReader(handle)}


def _group_members(group: int) -> list[str]:
    """The processes of process group ``group`` (zombies included), as ``pid state name``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        if int(fields[2]) == group:  # after the name: state, ppid, pgrp
            found.append(f"{entry.name} {fields[0]} {(entry / 'comm').read_text().strip()}")
    return found


def test_run_names_stay_unique_and_readable() -> None:
    names = [p.name for p in expand_grid(["model.init_args.dim=1,2", "data.init_args.dim=1"], [0])]
    assert names == ["model.dim=1_data.dim=1_seed=0", "model.dim=2_data.dim=1_seed=0"]
    odd = [p.name for p in expand_grid(["loop.corrector=a/b,a:b"], None)]
    assert len(set(odd)) == 2 and all(n.startswith("corrector=a-b-") for n in odd)
    with pytest.raises(ValueError, match=r"gives 'loop\.mode' twice"):
        expand_grid(["loop.mode=augment", "loop.mode=replace"], None)


def test_a_grid_whose_points_all_fail_exits_non_zero(tmp_path: Path) -> None:
    recipe = str(ROOT / "recipes" / "gaussian_collapse.yaml")
    command = [sys.executable, "-m", "sclc_lightning.cli", "grid", "--config", recipe, "--out", str(tmp_path)]
    command += ["--set", "loop.mode=replace", "--seeds", "0-1", "--", "--loop.synthetic_fraction", "0"]
    grid = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    output, _ = grid.communicate(timeout=600)
    # the grid returns once every process it started has ended: none is left alive in its group
    # (a zombie has ended: an orphan is reaped by PID 1, which on a busy machine takes a moment)
    alive = [member for member in _group_members(grid.pid) if member.split()[1] != "Z"]
    assert alive == [], _group_members(grid.pid)
    done = subprocess.CompletedProcess(command, grid.returncode, output, "")
    assert done.returncode == 1, done.stdout
    assert "0 ok, 2 failed of 2 points" in done.stdout and "2 point(s) failed" in done.stdout
    assert {row["status"] for row in _table(tmp_path).values()} == {"failed"}
    # Rerun: failed points are left alone, unless --rerun-failed.
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 1 and again.stdout.count("skipped, failed (--rerun-failed retries it)") == 2
    retried = subprocess.run([*command[:-3], "--rerun-failed", *command[-3:]], capture_output=True, text=True)
    assert retried.returncode == 1 and "skipped" not in retried.stdout, retried.stdout
    log = (tmp_path / "mode=replace_seed=0" / "log.txt").read_text()
    assert log.count("sclc grid: mode=replace_seed=0 starts") == 2


def test_sigterm_stops_every_worker_and_a_rerun_resumes(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    # A short generation 0 and a long generation 1 (~20 s here): both workers are surely inside
    # generation 1 when the signal comes, even when one of them started seconds after the other.
    long_second = [*SMALL, "--loop.generations", "1", "--loop.initial_images", "1600"]
    long_second += ["--loop.images_per_generation", "96000"]
    args = ["--set", "loop.synthetic_fraction=0.5,1", "--jobs", "2", "--stop-timeout", "60", "--", *long_second]
    grid = subprocess.Popen(
        _grid(out, *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    names = ["synthetic_fraction=0.5", "synthetic_fraction=1"]
    deadline = time.monotonic() + 300
    try:  # until both points train generation 1 (their first checkpoint is behind them)
        while time.monotonic() < deadline:
            logs = [(out / n / "log.txt").read_text() if (out / n / "log.txt").exists() else "" for n in names]
            # generation 0's sample, not the set-up's dry run ("... points per rank sampled")
            if all("SelfConsumingLoop: sampled " in log for log in logs):
                break
            assert grid.poll() is None, grid.communicate()[0]
            time.sleep(0.2)
        points = [json.loads((out / n / "point.json").read_text()) for n in names]
        assert all(p["status"] == "running" for p in points), points  # the test needs both still training
        pids = [p["pid"] for p in points]
        os.killpg(grid.pid, signal.SIGTERM)  # the whole process group, as a scheduler or a shell does
        output, _ = grid.communicate(timeout=120)
    finally:
        grid.kill()
    assert grid.returncode == 128 + signal.SIGTERM, output
    assert "stopped by SIGTERM" in output
    assert not any(pid_alive(pid) for pid in pids)  # the workers are gone
    table = _table(out)
    assert {table[n]["status"] for n in names} == {"interrupted"}, table
    assert all("SIGTERM stopped the fit" in table[n]["error"] for n in names), [table[n]["error"] for n in names]

    rerun = subprocess.run(_grid(out, *args), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    table = _table(out)
    assert {table[n]["status"] for n in names} == {"ok"} and {table[n]["final_generation"] for n in names} == {"1"}
    for name in names:
        log = (out / name / "log.txt").read_text()
        assert f"sclc grid: {name} resumes from" in log
        with open(out / name / "metrics.csv", newline="") as handle:
            assert [int(float(r["generation"])) for r in csv.DictReader(handle)] == [0, 1]

    again = subprocess.run(_grid(out, *args), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("skipped, finished") == 2, again.stdout


def test_only_the_loops_own_checkpoints_are_resumed(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A point resumes from the most advanced checkpoint holding its run's loop state, never from
    the newest file: planted, foreign and broken ``.ckpt`` files written later are skipped."""
    import json
    import os

    import torch

    from sclc_lightning.store.checkpoints import latest_checkpoint

    run = tmp_path / "point"
    (run / "synthetic").mkdir(parents=True)
    (run / "synthetic" / "manifest.json").write_text(json.dumps({"run_id": "mine"}))
    assert latest_checkpoint(run) is None

    def save(name: str, step: int, run_id: str | None) -> Path:
        path = run / "logs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        callbacks = {} if run_id is None else {"SelfConsumingLoop": {"run_id": run_id}}
        torch.save({"global_step": step, "epoch": step // 10, "callbacks": callbacks}, path)
        return path

    early, genuine = save("epoch=1.ckpt", 10, "mine"), save("epoch=2.ckpt", 20, "mine")
    os.utime(early, (2e9, 2e9))  # newest by modification time, but less advanced
    save("zzz-planted.ckpt", 99, "someone-else")
    save("zzz-no-loop.ckpt", 99, None)
    (run / "logs" / "zzz-garbage.ckpt").write_bytes(b"not a checkpoint")
    assert latest_checkpoint(run) == genuine
    skipped = capsys.readouterr().err
    assert skipped.count("is not a checkpoint of run mine") == 3 and "zzz-planted" in skipped


def test_a_grid_json_of_another_shape_is_refused(tmp_path: Path) -> None:
    import pytest

    from sclc_lightning.grid.status import GridError, GridSpec

    (tmp_path / "grid.json").write_text("[1, 2]")
    spec = GridSpec("recipe.yaml", "0" * 64, [], None, [])
    with pytest.raises(GridError, match=r"grid.json holds a JSON list, not a grid's definition"):
        spec.save_or_check(tmp_path)
