"""Run folders on object storage are not built yet (issue 34, step 4): a URL where a run's
folder is given is refused at once, naming the option, instead of becoming a local folder named
``s3:`` (``Path("s3://b/r")`` is ``s3:/b/r``) or failing deep inside with a cloud library's
traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from sclc_lightning import SelfConsumingLoop

RECIPE = str(Path(__file__).parents[1] / "recipes" / "gaussian_collapse.yaml")
SAID = "is an object-storage or URL location: run folders on object storage are not supported yet"


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
        (["fit", "--config", RECIPE, "--run_dir", "s3://bucket/run"], "--run_dir"),
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
