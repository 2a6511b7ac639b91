"""A URL where the loop, a grid or a bench needs a POSIX folder is refused at once, naming the
option, instead of becoming a local folder named ``s3:`` (``Path("s3://b/r")`` is ``s3:/b/r``)
or failing deep inside with a cloud library's traceback. A run on object storage goes through
``sclc fit --run_dir URL`` (tests/cloud/test_remote_fit.py; ``file://`` here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sclc_lightning import SelfConsumingLoop

RECIPE = str(Path(__file__).parents[1] / "recipes" / "gaussian_collapse.yaml")
SAID = "is an object-storage or URL location: the loop writes a local or shared POSIX folder"


@pytest.mark.parametrize("url", ["s3://bucket/run", "gs://bucket/run", "file:///tmp/run", "az://c/run"])
def test_the_loop_refuses_an_output_dir_url(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=f"`output_dir` '{url}' {SAID}"):
        SelfConsumingLoop(1.0, 2, output_dir=url)
    assert list(tmp_path.iterdir()) == []


def test_the_commands_refuse_a_url_for_a_run_or_grid_or_bench_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sclc_lightning.cli import main

    monkeypatch.chdir(tmp_path)
    for words, option in [
        (["fit", "--config", RECIPE, "--loop.output_dir", "gs://bucket/synthetic"], "`output_dir`"),
        (["grid", "--config", RECIPE, "--seeds", "0-1", "--out", "s3://bucket/grid"], "--out"),
        (["grid", "--config", RECIPE, "--seeds", "0-1", "--out", "s3://bucket/grid", "--dry-run"], "--out"),
        (["bench", "run", "--task", "gaussian_prop1", "--seeds", "0-1", "--out", "s3://bucket/bench"], "`out`"),
    ]:
        try:
            code = main(words)
        except SystemExit as ended:
            code = ended.code  # type: ignore[assignment]
        said = capsys.readouterr().err
        assert code == 2 and f"{option} '" in said and SAID in said, (words, said[-500:])
    assert list(tmp_path.iterdir()) == []  # no folder named `s3:` or `gs:`, no default run folder


def test_a_run_dir_url_is_a_run_on_object_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``file://`` goes through fsspec like ``s3://``: the run is published as snapshots there."""
    from sclc_lightning.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCLC_RUN_CACHE", str(tmp_path / "cache"))
    url = (tmp_path / "store" / "run").as_uri()
    assert main(["fit", "--config", RECIPE, "--wandb", "false", "--loop.generations", "2", "--run_dir", url]) == 0
    published = sorted(p.name for p in (tmp_path / "store" / "run" / "snapshots").iterdir())
    assert published[-1] == f"{len(published):09d}.json" and len(published) >= 3  # generations 0-2, then the end
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "store"]  # no folder named `file:`


def test_a_rank_of_a_multi_process_run_refuses_a_run_dir_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sclc_lightning.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCLC_RUN_CACHE", str(tmp_path / "cache"))
    url = (tmp_path / "store" / "run").as_uri()
    for devices in ("2", "[0, 1]"):  # asked for on the command line: refused before anything is opened
        words = ["fit", "--config", RECIPE, "--wandb", "false", "--run_dir", url, "--trainer.devices", devices]
        assert main(words) == 2
        assert "takes one process for now" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun and Lightning's launcher set it in every process
    assert main(["fit", "--config", RECIPE, "--wandb", "false", "--run_dir", url]) == 2
    assert "takes one process for now" in capsys.readouterr().err
    assert not (tmp_path / "store").exists() and not (tmp_path / "cache").exists()


def test_a_run_on_object_storage_keeps_its_synthetic_data_and_its_local_copy_to_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sclc_lightning.cli import main
    from sclc_lightning.store import RunDirectoryError
    from sclc_lightning.store.remote import RemoteRunDirectory

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCLC_RUN_CACHE", str(tmp_path / "cache"))
    url = (tmp_path / "store" / "run").as_uri()
    args = ["fit", "--config", RECIPE, "--wandb", "false", "--run_dir", url, "--loop.output_dir", "elsewhere"]
    assert main(args) == 2
    assert "lies outside the run on object storage" in capsys.readouterr().err and not (tmp_path / "elsewhere").exists()
    # a local folder holding anything but this URL's copy is never made a snapshot's state (which removes files)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    with pytest.raises(RunDirectoryError, match="is not empty and is no copy of"):
        RemoteRunDirectory(url, tmp_path / "mine").read()
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work"
    RemoteRunDirectory(url, tmp_path / "copy").read()
    with pytest.raises(RunDirectoryError, match="mirrors"):
        RemoteRunDirectory((tmp_path / "store" / "other").as_uri(), tmp_path / "copy").read()
