"""The grid's method axis (`sclc grid --method NAME=SPEC`) and its Python API (`run_grid`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sclc_lightning.cli import main
from sclc_lightning.grid import run_grid
from sclc_lightning.grid.status import GridError

RECIPE = str(Path(__file__).parents[2] / "recipes" / "gaussian_collapse.yaml")
OT = '{"corrector": "optimal_transport", "corrector_kwargs": {"strength": 1.0}}'


def test_a_method_axis_pairs_a_corrector_with_its_own_settings(tmp_path: Path) -> None:
    table = run_grid(
        RECIPE,
        out=tmp_path,
        methods={"ot": OT, "km": {"corrector": "kmeans", "corrector_kwargs": {"num_clusters": 4}}, "none": {}},
        sets=["loop.synthetic_fraction=0.5,1"],
        seeds="0",
        extra=["--loop.generations", "2"],
    )
    assert table.exit_code == 0 and table.out == tmp_path
    assert [(r["method"], r["loop.synthetic_fraction"], r["status"]) for r in table.rows] == [
        (m, f, "ok") for m in ("ot", "km", "none") for f in ("0.5", "1")
    ]
    recorded = {}
    for row in table.rows:
        manifest = json.loads((Path(row["run_dir"]) / "synthetic" / "manifest.json").read_text())
        recorded[row["method"]] = manifest["config"]["corrector"]
    assert recorded["ot"]["name"] == "optimal_transport" and recorded["ot"]["strength"] == 1.0
    assert recorded["km"]["name"] == "kmeans" and recorded["km"]["num_clusters"] == 4
    assert recorded["none"] is None
    # each method's layer names its corrector's arguments, or none: never the recipe's
    assert yaml.safe_load((tmp_path / "methods" / "km.yaml").read_text())["loop"]["corrector_kwargs"] == {
        "num_clusters": 4
    }
    assert json.loads((tmp_path / "grid.json").read_text())["methods"]["ot"]["corrector"] == "optimal_transport"
    with pytest.raises(GridError, match="holds another grid"):  # another method under the same name
        run_grid(RECIPE, out=tmp_path, methods={"ot": {"corrector": "identity"}}, sets=["loop.synthetic_fraction=1"])


def test_the_command_takes_methods_and_refuses_bad_ones(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    grid = ["grid", "--config", RECIPE, "--out", str(tmp_path), "--dry-run", "--seeds", "0-1"]
    assert main([*grid, "--method", f"ot={OT}", "--method", 'acc={"mode": "accumulate"}']) == 0
    printed = capsys.readouterr().out
    assert f"--config {tmp_path / 'methods' / 'ot.yaml'}" in printed and printed.count("sclc fit") == 4
    assert '"mode_kwargs": null' in printed  # accumulate without arguments runs with none
    for bad, said in [
        ("ot", "must look like NAME=SPEC"),
        (f"ot={OT[:-1]}", "does not parse"),
        ('ot={"corector": "kmeans"}', "did you mean 'corrector'"),
        ('ot={"corrector": "kmeans", "per_task": {"x": {}}}', "only `sclc bench` has tasks"),
        ('ot={"corrector": "kmeans", "needs": ["continuous"]}', "only `sclc bench` skips tasks"),
        ('ot={"corrector": "tests.bench.harmful:NotACorrector"}', "not a Corrector subclass"),
        ('ot={"corrector": "tests.bench.nowhere:Shift"}', "does not name an importable class"),
    ]:
        with pytest.raises(SystemExit):
            main([*grid, "--method", bad])
        assert said in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*grid, "--method", f"ot={OT}", "--method", "ot={}"])
    assert "names 'ot' twice" in capsys.readouterr().err


def test_a_corrector_by_import_path_is_recorded_by_its_code() -> None:
    from sclc_lightning.correctors.base import _REGISTRY

    made = _REGISTRY.make("tests.bench.harmful:Shift", {"offset": 0.5})
    name = made.describe()["name"]
    assert name.startswith("tests.bench.harmful:Shift#code:") and made.describe()["offset"] == 0.5
    with pytest.raises(ValueError, match="does not take"):
        _REGISTRY.make("tests.bench.harmful:Shift", {"ofset": 0.5})
