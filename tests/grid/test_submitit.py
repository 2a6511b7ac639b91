"""``sclc grid --launcher submitit-local`` end to end, and what ``--launcher slurm`` submits
(``sbatch`` and ``srun`` faked on ``PATH``: the job script and the pickled jobs are checked)."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import pytest
from submitit.core.utils import DelayedSubmission

from sclc_lightning.cli import main

ROOT = Path(__file__).parents[2]
RECIPE = str(ROOT / "recipes" / "gaussian_collapse.yaml")


def test_submitit_local_grid_runs_points_as_jobs(tmp_path: Path) -> None:
    args = ["grid", "--config", RECIPE, "--set", "loop.synthetic_fraction=0.5,1", "--launcher", "submitit-local"]
    args += ["--jobs", "2", "--out", str(tmp_path), "--", "--loop.generations", "3", "--wandb", "false"]
    assert main(args) == 0
    with open(tmp_path / "runs.csv", newline="") as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"synthetic_fraction=0.5", "synthetic_fraction=1"}
    for name, row in rows.items():
        assert row["status"] == "ok" and row["final_generation"] == "3", row
        assert row["job_id"] and (tmp_path / ".submitit" / row["job_id"]).is_dir()  # submitit's own logs
        log = (tmp_path / name / "log.txt").read_text()
        assert f"sclc grid: {name} starts" in log and "generation 3 trained" in log
    assert rows["synthetic_fraction=0.5"]["final_num_synthetic"] == "5"
    assert rows["synthetic_fraction=1"]["final_num_synthetic"] == "10"
    # The same command again: nothing to run.
    assert main(args) == 0
    with open(tmp_path / "runs.csv", newline="") as handle:
        assert {row["status"] for row in csv.DictReader(handle)} == {"ok"}


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_slurm_launcher_submits_one_array_with_the_resources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake(bin_dir, "sbatch", f'cp "$1" {tmp_path / "job.sh"}\necho "Submitted batch job 777"\n')
    _fake(bin_dir, "srun", "exit 1\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(Path(RECIPE).read_text() + "slurm:\n  partition: gpu\n  account: lab\n  time: 600\n")
    out = tmp_path / "grid"
    args = ["grid", "--config", str(recipe), "--set", "loop.synthetic_fraction=0.5,1", "--seeds", "0-1"]
    args += ["--launcher", "slurm", "--jobs", "3", "--out", str(out), "--detach", "--slurm.time", "90"]
    args += ["--slurm.nodes", "2", "--slurm.tasks_per_node", "4", "--slurm.gpus_per_node", "4"]
    assert main([*args, "--slurm.setup", "module load cuda", "--", "--loop.generations", "3"]) == 0
    script = (tmp_path / "job.sh").read_text()
    for line in (
        "#SBATCH --array=0-3%3",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=lab",
        "#SBATCH --time=90",  # the command line wins over the recipe
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --signal=USR2@120",
        "module load cuda",
    ):
        assert line in script, (line, script)
    jobs = [DelayedSubmission.load(out / ".submitit" / f"777_{i}" / f"777_{i}_submitted.pkl") for i in range(4)]
    names = {job.function.point.name for job in jobs}
    assert names == {f"synthetic_fraction={f}_seed={s}" for f in ("0.5", "1") for s in (0, 1)}
    args_of_one = jobs[0].function.point.fit_args(jobs[0].function.config, Path(jobs[0].function.run_dir))
    assert args_of_one[-4:] == ["--trainer.num_nodes", "2", "--trainer.devices", "4"]
    assert Path(jobs[0].function.run_dir).is_absolute() and all(Path(c).is_absolute() for c in jobs[0].function.config)


@pytest.mark.slow
def test_submitit_local_time_limit_requeues_and_resumes_identically(tmp_path: Path) -> None:
    """A point longer than its time limit: submitit-local sends USR2 before the limit, the fit
    saves and requeues, the requeued job resumes; its final weights equal an uninterrupted run's."""
    import torch

    from sclc_lightning.store.checkpoints import latest_checkpoint

    recipe = str(ROOT / "recipes" / "eight_gaussians_ddpm.yaml")
    small = ["--model.init_args.hidden", "32", "--model.init_args.timesteps", "20"]
    small += ["--model.init_args.sampling_steps", "20", "--data.init_args.n", "160", "--data.init_args.n_test", "160"]
    # 5 generations of about 7 s each on the faster machine kind (17 s on the slower): the
    # signal 30 s after the start comes inside the fit on both
    small += ["--data.init_args.batch_size", "16", "--loop.generations", "4", "--trainer.callbacks", "[]"]
    small += ["--loop.images_per_generation", "96000", "--loop.initial_images", "96000", "--wandb", "false"]
    base = ["grid", "--config", recipe, "--set", "loop.synthetic_fraction=0.5", "--jobs", "1"]
    preempted = tmp_path / "preempted"
    args = [*base, "--launcher", "submitit-local", "--out", str(preempted), "--slurm.time", "1"]
    assert main([*args, "--slurm.signal_delay_s", "30", "--", *small]) == 0
    run = preempted / "synthetic_fraction=0.5"
    log = (run / "log.txt").read_text()
    assert "SIGUSR2 stopped the fit" in log or "SIGUSR2 in generation" in log, log[-2000:]
    assert "resumes from" in log and (run / "hpc_ckpt_1.ckpt").exists()
    reference = tmp_path / "reference"
    assert main([*base, "--out", str(reference), "--", *small]) == 0

    def weights(folder: Path) -> dict[str, torch.Tensor]:
        found = latest_checkpoint(folder / "synthetic_fraction=0.5")
        assert found is not None and found.suffix == ".ckpt" and found.is_file(), found
        return torch.load(found, map_location="cpu", weights_only=False)["state_dict"]

    mine, theirs = weights(preempted), weights(reference)
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
