"""A run's ``config.yaml`` rerun or resumed under another ``--run_dir``: every path the run
directory implies (the loop's ``output_dir``, the loggers' ``save_dir``, the W&B run's name)
follows the ``--run_dir`` of the command, so nothing is written into the folder the
configuration came from; an ``output_dir`` set elsewhere is kept."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from pathlib import Path

import pytest
import yaml
from jsonargparse import Namespace

from sclc_lightning.cli import main
from sclc_lightning.datasets.toy import GaussianDataModule
from sclc_lightning.lightning_cli import follow_run_dir

RECIPE = str(Path(__file__).parents[1] / "recipes" / "gaussian_collapse.yaml")


def _fit(*extra: str) -> int:
    return main(["fit", "--config", RECIPE, "--wandb", "false", "--loop.generations", "2", *extra])


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by its path and the digest of its content (links are not
    followed: W&B links a log of its own service, outside the run, that grows)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _generations(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [int(float(row["generation"])) for row in csv.DictReader(handle)]


def _checkpoint(run_dir: Path) -> Path:
    (found,) = (run_dir / "logs" / "version_0" / "checkpoints").glob("*.ckpt")
    return found


@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
def test_a_config_yaml_reruns_in_the_new_run_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, absolute: bool
) -> None:
    """docs/recipes.md: `sclc fit --config <run_dir>/config.yaml --run_dir new` (was refused:
    "`output_dir` 'cli/b/synthetic' already holds the synthetic data of run ...")."""
    monkeypatch.chdir(tmp_path)
    old, new = (tmp_path / "cli" / "b", tmp_path / "cli" / "new") if absolute else (Path("cli/b"), Path("cli/new"))
    assert _fit("--run_dir", str(old)) == 0
    before = _snapshot(tmp_path / "cli" / "b")
    assert main(["fit", "--config", str(old / "config.yaml"), "--run_dir", str(new)]) == 0
    assert _snapshot(tmp_path / "cli" / "b") == before  # nothing written into the old run
    assert _generations(new) == [0, 1, 2] and (new / "synthetic" / "manifest.json").is_file()
    assert [p.name for p in (new / "logs").iterdir()] == ["version_0"]
    config = yaml.safe_load((new / "config.yaml").read_text())
    assert config["loop"]["output_dir"] == os.path.join(str(new), "synthetic")
    assert [logger["init_args"]["save_dir"] for logger in config["trainer"]["logger"]] == [str(new)]
    assert config["run_dir"] == config["trainer"]["default_root_dir"] == str(new)


def test_resuming_a_copy_never_writes_into_the_original(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original, copy = tmp_path / "original", tmp_path / "copy"
    assert _fit("--run_dir", str(original)) == 0
    shutil.copytree(original, copy)
    before = _snapshot(original)
    config = ["fit", "--config", str(copy / "config.yaml"), "--loop.generations", "3"]
    # the copy's config.yaml names the original as run_dir: resuming the copy's checkpoint there
    # would extend the original's manifest; refused, naming both folders
    assert main([*config, "--ckpt_path", str(_checkpoint(copy))]) == 2
    err = capsys.readouterr().err
    assert f"is a checkpoint of the run in {copy}, but --run_dir is {original}" in err, err
    assert _snapshot(original) == before
    assert main([*config, "--run_dir", str(copy), "--ckpt_path", str(_checkpoint(copy))]) == 0
    assert _snapshot(original) == before  # no log folder, no generation 3, no manifest journal
    assert _generations(copy) == [0, 1, 2, 3] and (copy / "synthetic" / "gen_0003").is_dir()
    assert sorted(p.name for p in (copy / "logs").iterdir()) == ["version_0", "version_1"]


def test_paths_set_inside_the_old_run_folder_follow_too(tmp_path: Path) -> None:
    """An `output_dir` and a ModelCheckpoint `dirpath` the first command put inside its run
    folder are that run's: under another --run_dir they move into the new folder."""
    old, new = tmp_path / "old", tmp_path / "new"
    checkpoint = (
        f"[{{class_path: lightning.pytorch.callbacks.ModelCheckpoint, init_args: {{dirpath: {old / 'ckpts'}}}}}]"
    )
    assert _fit("--run_dir", str(old), "--loop.output_dir", str(old / "data"), "--trainer.callbacks", checkpoint) == 0
    assert (old / "data" / "manifest.json").is_file() and list((old / "ckpts").glob("*.ckpt"))
    before = _snapshot(old)
    assert main(["fit", "--config", str(old / "config.yaml"), "--run_dir", str(new)]) == 0
    assert _snapshot(old) == before
    assert (new / "data" / "manifest.json").is_file() and list((new / "ckpts").glob("*.ckpt"))
    config = yaml.safe_load((new / "config.yaml").read_text())
    assert config["trainer"]["callbacks"][0]["init_args"]["dirpath"] == str(new / "ckpts")


def test_an_output_dir_set_elsewhere_is_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shared = tmp_path / "shared"
    assert _fit("--run_dir", str(tmp_path / "a"), "--loop.output_dir", str(shared)) == 0
    assert main(["fit", "--config", str(tmp_path / "a" / "config.yaml"), "--run_dir", str(tmp_path / "b")]) == 2
    assert f"`output_dir` '{shared}' already holds the synthetic data of run" in capsys.readouterr().err
    assert not (tmp_path / "b" / "synthetic").exists()


def _config(run_dir: str, output_dir: str | None, *loggers: Namespace) -> Namespace:
    trainer = Namespace(default_root_dir=run_dir, logger=list(loggers) or None)
    return Namespace(run_dir=run_dir, trainer=trainer, loop=Namespace(output_dir=output_dir))


def _logger(kind: str, **init_args: object) -> Namespace:
    return Namespace(class_path=f"lightning.pytorch.loggers.{kind}", init_args=Namespace(**init_args))


def test_follow_run_dir_repoints_only_what_the_old_run_dir_implied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # runs/old: a run folder gone (copied, then removed)
    csv_logger = _logger("CSVLogger", save_dir="runs/old", name="logs")
    wandb = _logger("WandbLogger", save_dir="runs/old/", project="p", name="old", offline=True)
    config = _config("runs/old", "runs/old/synthetic", csv_logger, wandb)
    config.run_dir = "/abs/new"  # --run_dir on the command line
    follow_run_dir(config)
    assert config.loop.output_dir == "/abs/new/synthetic"
    assert config.trainer.logger[0].init_args == Namespace(save_dir="/abs/new", name="logs")
    assert config.trainer.logger[1].init_args == Namespace(save_dir="/abs/new", project="p", name="new", offline=True)
    # anywhere inside the old folder: moved with it; a W&B name of its own is kept
    inside = _config("runs/old", "runs/old/data/x", _logger("WandbLogger", save_dir="runs/old/wb", name="mine"))
    inside.trainer.callbacks = [_logger("ModelCheckpoint", dirpath="runs/old/ckpts"), "not a namespace"]
    inside.run_dir = "runs/new"
    follow_run_dir(inside)
    assert inside.loop.output_dir == "runs/new/data/x"
    assert inside.trainer.logger[0].init_args == Namespace(save_dir="runs/new/wb", name="mine")
    assert inside.trainer.callbacks[0].init_args.dirpath == "runs/new/ckpts"
    # set elsewhere (a sibling whose name starts alike included): kept
    kept = _config("runs/old", "/data/synthetic", _logger("TensorBoardLogger", save_dir="runs/older", name="x"))
    kept.trainer.callbacks = _logger("ModelCheckpoint", dirpath="/ckpts")
    kept.run_dir = "runs/new"
    follow_run_dir(kept)
    assert kept.loop.output_dir == "/data/synthetic" and kept.trainer.logger[0].init_args.save_dir == "runs/older"
    assert kept.trainer.callbacks.init_args.dirpath == "/ckpts"
    # a recipe's own default_root_dir (an existing folder, not a run's): nothing moves
    (tmp_path / "experiments").mkdir()
    recipe = _config("experiments", "experiments/synth", _logger("CSVLogger", save_dir="experiments", name="l"))
    recipe.run_dir = "runs/new"
    follow_run_dir(recipe)
    assert (
        recipe.loop.output_dir == "experiments/synth" and recipe.trainer.logger[0].init_args.save_dir == "experiments"
    )
    (tmp_path / "experiments" / "config.yaml").write_text("{}")  # a run's folder: its paths follow
    follow_run_dir(recipe)
    assert recipe.loop.output_dir == "runs/new/synth" and recipe.trainer.logger[0].init_args.save_dir == "runs/new"
    same = _config("runs/old", "runs/old/synthetic")
    same.run_dir = "runs/old/"
    follow_run_dir(same)
    assert same.loop.output_dir == "runs/old/synthetic"
    fresh = _config("", None)
    fresh.trainer.default_root_dir = None
    follow_run_dir(fresh)
    assert fresh.loop.output_dir is None and fresh.trainer.logger is None


def non_finite_sampler(module, num_samples, *, generator=None):  # type: ignore[no-untyped-def]
    """A sampler for the tests below: what the dry run refuses before generation 0. When
    ``SCLC_TEST_NEIGHBOUR`` names a file, it writes it first: another fit's file, written beside
    the refused attempt's folder while it was being set up."""
    import torch

    neighbour = os.environ.get("SCLC_TEST_NEIGHBOUR")
    if neighbour:
        Path(neighbour).parent.mkdir(parents=True, exist_ok=True)
        Path(neighbour).write_text("another fit's")
    link = os.environ.get("SCLC_TEST_LINK")  # another fit's W&B run started meanwhile in the same folder
    if link:
        Path(link).unlink()
        Path(link).symlink_to("offline-run-20990101_000000-another")
    return torch.full((num_samples, module.dim), float("nan"))


def crashing_sampler(module, num_samples, *, generator=None):  # type: ignore[no-untyped-def]
    raise KeyError("a bug in the user's code")


REFUSED = ["--loop.sampler", "tests.test_cli_run_dir:non_finite_sampler"]


@pytest.mark.parametrize("wandb", ["false", "true"])
def test_an_attempt_refused_in_set_up_leaves_no_folder_it_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, wandb: str
) -> None:
    """The run folder (and its missing parents) made by a refused attempt is gone; a folder that
    was there keeps what it held, and nothing more."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert _fit("--run_dir", str(tmp_path / "new" / "deeper" / "run"), "--wandb", wandb, *REFUSED) == 2
    assert "non-finite values" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    for made in ("mine", "empty"):
        (tmp_path / made).mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("kept")
    for existing in ("mine", "empty"):
        assert _fit("--run_dir", str(tmp_path / existing), "--wandb", wandb, *REFUSED) == 2
    assert _snapshot(tmp_path / "mine") == {"notes.txt": hashlib.sha256(b"kept").hexdigest()}
    assert not list((tmp_path / "mine").iterdir())[1:] and not list((tmp_path / "empty").iterdir())
    monkeypatch.chdir(tmp_path)  # a path through a folder that does not exist
    assert _fit("--run_dir", "nx1/../nx2", "--wandb", wandb, *REFUSED) == 2
    assert not (tmp_path / "nx2").exists() and not (tmp_path / "nx1").exists()


def test_a_refused_attempt_never_removes_what_another_fit_writes_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the refused attempt removed the whole folder it had made (``runs/``, missing when it
    started), with the run another fit was writing under it meanwhile."""
    neighbour = tmp_path / "runs" / "other" / "synthetic" / "manifest.json"
    monkeypatch.setenv("SCLC_TEST_NEIGHBOUR", str(neighbour))
    assert _fit("--run_dir", str(tmp_path / "runs" / "mine"), *REFUSED) == 2
    assert neighbour.read_text() == "another fit's"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["other"]  # its own folder is gone


def test_a_crash_in_set_up_leaves_no_folder_either(tmp_path: Path) -> None:
    args = ["--run_dir", str(tmp_path / "new" / "run"), "--loop.sampler", "tests.test_cli_run_dir:crashing_sampler"]
    with pytest.raises(KeyError, match="a bug in the user's code"):
        _fit(*args)
    assert not (tmp_path / "new").exists()


def test_a_refused_resume_leaves_the_runs_files_and_wandb_links_as_they_were(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the refused attempt's configuration overwrote the run's ``config.yaml``, and W&B's
    links in the run's ``wandb/`` were left pointing at the attempt's removed W&B run."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = tmp_path / "run"
    assert _fit("--run_dir", str(run), "--wandb", "true") == 0
    before = _snapshot(run)
    links = {p.name: os.readlink(p) for p in (run / "wandb").iterdir() if p.is_symlink()}
    assert "latest-run" in links
    resume = ["--run_dir", str(run), "--ckpt_path", "last", "--wandb", "true"]
    assert _fit(*resume, "--seed_everything", "7", "--loop.seed", "7") == 2
    assert "Cannot resume" in capsys.readouterr().err
    assert _fit(*resume, *REFUSED) == 2
    assert _fit("--run_dir", str(run), "--wandb", "true") == 2  # a new run into its folder: refused after
    assert "already holds the synthetic data" in capsys.readouterr().err  # hparams.yaml was logged
    assert _snapshot(run) == before
    assert sorted(p.name for p in (run / "logs").iterdir()) == ["version_0"]
    assert {p.name: os.readlink(p) for p in (run / "wandb").iterdir() if p.is_symlink()} == links
    assert _fit(*resume, "--loop.generations", "3") == 0  # an accepted one writes its config.yaml
    assert yaml.safe_load((run / "config.yaml").read_text())["loop"]["generations"] == 3
    # that config.yaml names the checkpoint it resumed: rerun elsewhere, the refusal says how to start afresh
    rerun = ["fit", "--config", str(run / "config.yaml"), "--run_dir", str(tmp_path / "again"), "--wandb", "false"]
    capsys.readouterr()
    assert main(rerun) == 2
    assert "to start a new run in" in capsys.readouterr().err and not (tmp_path / "again").exists()
    assert main([*rerun, "--ckpt_path", "null"]) == 0
    assert _generations(tmp_path / "again") == [0, 1, 2, 3]


def test_a_run_dir_under_the_home_folder_holds_every_file_of_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: ``--run_dir '~/x'`` wrote the logs to ``$HOME/x`` and the synthetic data to ``./~/x``."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert _fit("--run_dir", "~/x", "--loop.generations", "1") == 0
    assert _fit("--run_dir", "~/x", "--loop.generations", "2", "--ckpt_path", "last") == 0  # found there too
    assert not (tmp_path / "~").exists()
    run = tmp_path / "home" / "x"
    assert {"config.yaml", "metrics.csv", "synthetic", "logs"} <= {p.name for p in run.iterdir()}
    assert _generations(run) == [0, 1, 2]


def test_a_run_dir_through_a_link_and_dotdot_is_one_folder(tmp_path: Path) -> None:
    """Was: ``link/../ok`` put config.yaml and metrics.csv in ``./ok`` (the path tidied as text) and
    the synthetic data and logs beside the link's target (the path as the filesystem goes)."""
    (tmp_path / "elsewhere" / "deep").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere" / "deep")
    assert _fit("--run_dir", str(tmp_path / "link" / ".." / "ok"), "--loop.generations", "1") == 0
    assert not (tmp_path / "ok").exists()
    run = tmp_path / "elsewhere" / "ok"
    assert {"config.yaml", "metrics.csv", "synthetic", "logs"} <= {p.name for p in run.iterdir()}


def test_a_refused_attempt_leaves_the_wandb_links_another_fit_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the refused attempt put back the links as it had found them, over those of a fit that
    started its W&B run in the same folder meanwhile."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = tmp_path / "run"
    assert _fit("--run_dir", str(run), "--wandb", "true", "--loop.generations", "1") == 0
    monkeypatch.setenv("SCLC_TEST_LINK", str(run / "wandb" / "latest-run"))
    attempt = ["--run_dir", str(run), "--wandb", "true", "--loop.output_dir", str(tmp_path / "data"), *REFUSED]
    assert _fit(*attempt) == 2  # refused by the dry run, after its W&B run started
    assert os.readlink(run / "wandb" / "latest-run") == "offline-run-20990101_000000-another"
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1  # the first fit's; the attempt's is gone


class InterruptedData(GaussianDataModule):
    """Ctrl-C while the user's data are being set up (after the loggers made their folders)."""

    def setup(self, stage: str | None = None) -> None:
        raise KeyboardInterrupt


def test_ctrl_c_in_set_up_leaves_no_folder(tmp_path: Path) -> None:
    import signal

    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):  # Lightning's graceful shutdown
            _fit("--run_dir", str(tmp_path / "new" / "run"), "--data", "tests.test_cli_run_dir.InterruptedData")
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores further Ctrl-C after the first
    assert not (tmp_path / "new").exists()


def test_a_wandb_run_its_logger_had_not_received_yet_is_removed_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while W&B was starting: the run is this process's (``wandb.run``), not yet its
    logger's; it is removed, and W&B's link is put back."""
    import sys
    import types

    from sclc_lightning.lightning_cli import _TrainingStarted

    marker = _TrainingStarted()
    marker.note_run_dir(str(tmp_path / "run"))
    started = tmp_path / "run" / "wandb" / "offline-run-20990101_000000-abcd1234"
    (started / "files").mkdir(parents=True)
    (tmp_path / "run" / "wandb" / "latest-run").symlink_to(started.name)
    neighbour = tmp_path / "run" / "wandb" / "offline-run-20990101_000000-another"
    neighbour.mkdir()
    wandb = types.SimpleNamespace(run=types.SimpleNamespace(dir=str(started / "files")))
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    marker.loggers = [types.SimpleNamespace(_experiment=None)]  # a logger without a run yet
    marker.note_wandb_run()
    marker.discard_logs()
    assert not started.exists() and neighbour.is_dir()  # only its own
    assert not os.path.lexists(tmp_path / "run" / "wandb" / "latest-run")  # there was none before
