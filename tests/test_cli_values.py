"""What ``sclc fit`` makes of values and names typed by a person: infinity in the loop's kwargs,
a class path that moved before the first release, a misspelt option."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from sclc_lightning.cli import main
from sclc_lightning.lightning_cli import moved_class_path, numbers_from_text

RECIPE = str(Path(__file__).parents[1] / "recipes" / "gaussian_collapse.yaml")


def _fit(tmp_path: Path, *extra: str) -> list[str]:
    return ["fit", "--config", RECIPE, "--run_dir", str(tmp_path / "r"), "--wandb", "false", *extra]


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sclc fit")]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("text", ["inf", "Infinity", ".inf", "+inf", "INF"])
def test_infinity_on_the_command_line_is_a_number(tmp_path: Path, text: str) -> None:
    """`--loop.corrector_kwargs.strength inf` (γ = ∞, keep only what the corrector selects) was
    refused: "`strength` must be a number >= 0 (inf allowed), got 'inf'"."""
    args = _fit(tmp_path, "--loop.generations", "1", "--loop.corrector", "optimal_transport")
    assert main([*args, "--loop.corrector_kwargs.strength", text]) == 0
    loop = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["loop"]
    assert loop["corrector_kwargs"] == {"strength": math.inf}


def test_a_negative_infinity_reaches_the_corrector_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _fit(tmp_path, "--loop.generations", "1", "--loop.corrector", "optimal_transport")
    assert main([*args, "--loop.corrector_kwargs.strength=-inf"]) == 2
    assert "`strength` must be a number >= 0 (inf allowed), got -inf." in _one_line(capsys)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "got 'abc' (text: write the number without quotes)"),
        ("nan", "got 'nan' (text: write the number without quotes)"),  # not infinity: kept as typed
    ],
)
def test_other_text_is_still_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    args = _fit(tmp_path, "--loop.generations", "1", "--loop.corrector", "optimal_transport")
    assert main([*args, "--loop.corrector_kwargs.strength", text]) == 2
    assert message in _one_line(capsys)


def test_numbers_from_text_converts_only_infinity() -> None:
    given = {"strength": "Infinity", "low": "-.inf", "name": "info", "lr": "1e-3", "n": "nan", "nested": {"x": "inf"}}
    converted = numbers_from_text(given)
    assert converted == {"strength": math.inf, "low": -math.inf, "name": "info", "lr": "1e-3", "n": "nan",
                         "nested": {"x": math.inf}}  # fmt: skip
    assert given["strength"] == "Infinity"  # a new mapping: the given one is left as it was
    assert numbers_from_text(None) is None and numbers_from_text([".inf", 2]) == [math.inf, 2]


def test_text_from_python_is_still_refused() -> None:
    """The conversion is the command line's: the loop keeps refusing text from a Python caller."""
    from sclc_lightning import SelfConsumingLoop

    with pytest.raises(ValueError, match=r"got 'inf' \(text: write the number without quotes\)"):
        SelfConsumingLoop(synthetic_fraction=1.0, generations=1, corrector="optimal_transport",
                          corrector_kwargs={"strength": "inf"})  # fmt: skip


MOVED = [
    *(
        (f"sclc_lightning.metrics.{name}", f"sclc_lightning.callbacks.{name}")
        for name in ("PointMetrics", "ConformerMetrics", "DetectorMetrics", "DiversityMetrics", "HeldOutScores")
    ),
    *(
        (f"sclc_lightning.metrics.{name}", f"sclc_lightning.callbacks.{name}")
        for name in ("FeatureDistanceEvaluator", "ImageMetrics", "MotionMetrics", "TextMetrics")
    ),
    ("sclc_lightning.data.toy.GaussianDataModule", "sclc_lightning.datasets.toy.GaussianDataModule"),
    ("sclc_lightning.data.toy.EightGaussiansDataModule", "sclc_lightning.datasets.toy.EightGaussiansDataModule"),
    ("sclc_lightning.visuals.SampleFigures", "sclc_lightning.callbacks.SampleFigures"),
    ("sclc_lightning.generation_csv.GenerationCSV", "sclc_lightning.callbacks.GenerationCSV"),
]


@pytest.mark.parametrize(("old", "new"), MOVED, ids=[old for old, _ in MOVED])
def test_moved_class_path_names_the_new_one(old: str, new: str) -> None:
    assert moved_class_path(old) == new


@pytest.mark.parametrize(
    "path",
    [
        "sclc_lightning.metrics.point_metrics.PointMetrics",  # still there
        "sclc_lightning.metrics.NoSuchMetric",  # nowhere
        "sclc_lightning.data.toy.NoSuchData",
        "my_project.metrics.PointMetrics",
    ],
)
def test_moved_class_path_is_none_for_others(path: str) -> None:
    assert moved_class_path(path) is None


@pytest.mark.parametrize(
    ("section", "old", "new"),
    [
        (
            {"trainer": {"callbacks": [{"class_path": "sclc_lightning.metrics.PointMetrics"}]}},
            "sclc_lightning.metrics.PointMetrics",
            "sclc_lightning.callbacks.PointMetrics",
        ),
        (
            {"trainer": {"callbacks": [{"class_path": "sclc_lightning.visuals.SampleFigures"}]}},
            "sclc_lightning.visuals.SampleFigures",
            "sclc_lightning.callbacks.SampleFigures",
        ),
        (
            {"data": {"class_path": "sclc_lightning.data.toy.GaussianDataModule"}},
            "sclc_lightning.data.toy.GaussianDataModule",
            "sclc_lightning.datasets.toy.GaussianDataModule",
        ),
    ],
    ids=["metrics", "visuals", "data"],
)
def test_a_yaml_with_a_moved_class_path_names_the_new_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: dict, old: str, new: str
) -> None:
    """Was only `Parser key "trainer.callbacks": Problem with given class_path '...'`."""
    layer = tmp_path / "old.yaml"
    layer.write_text(yaml.safe_dump(section))
    assert main(_fit(tmp_path, "--config", str(layer))) == 2
    line = _one_line(capsys)
    assert f"Problem with given class_path '{old}'" in line
    assert line.endswith(f"`{old}` moved: write `class_path: {new}` (README, Changes).")


def test_a_moved_callback_on_the_command_line_names_the_new_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_fit(tmp_path, "--trainer.callbacks", "[{class_path: sclc_lightning.metrics.DiversityMetrics}]")) == 2
    line = _one_line(capsys)
    assert "moved: write `class_path: sclc_lightning.callbacks.DiversityMetrics`" in line


def test_a_misspelt_option_gets_a_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_fit(tmp_path, "--loop.generatons", "3")) == 2
    assert _one_line(capsys).endswith("unrecognized arguments: --loop.generatons 3; did you mean --loop.generations?")
    assert main(_fit(tmp_path, "--loop.synthetic_fracton=0.5", "--trainer.max_epohcs", "2")) == 2
    assert _one_line(capsys).endswith("did you mean --loop.synthetic_fraction? did you mean --trainer.max_epochs?")
    assert main(_fit(tmp_path, "--zzz", "3")) == 2  # nothing close: argparse's message alone
    assert _one_line(capsys).endswith("unrecognized arguments: --zzz 3")
