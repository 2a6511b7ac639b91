"""User layers of a bench (``--config``, ``layers=``): refused whole before anything is written
when they cannot give what the card says, and copied into the bench so that later edits of the
file change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sclc_lightning import bench
from sclc_lightning.bench.layers import LayerError
from sclc_lightning.bench.runner import BenchError, plan_bench

REFUSED = [
    ("", "is empty"),
    ("# only a comment\n", "is empty"),
    ("- a\n", "is a list, not a mapping"),
    ("loop: {generations: 60\n", "is not readable YAML"),
    ("loop: null\n", "sets loop to nothing"),
    ("loop: {generatons: 60}\n", "does not accept option 'generatons'"),
    ("looop: {generations: 60}\n", "'looop.generations' is not accepted"),
    ("data: {init_args: {root: /x}}\n", 'Parser key "data"'),
    ("loop: {generations: 10}\n", "loop.generations is 10, before generation 50"),
    ("loop: {corrector: optimal_transport}\n", "sets loop.corrector, which a method sets"),
    ("loop: {synthetic_fraction: 0.5, mode: accumulate}\n", "sets loop.synthetic_fraction, loop.mode"),
    ("loop: {output_dir: /tmp/elsewhere}\n", "sets loop.output_dir: the bench gives every point its folder"),
    ("seed_everything: 3\n", "sets seed_everything: the bench seeds every point"),
    ("ckpt_path: last\n", "sets ckpt_path"),
    # the same settings in the other forms the parser reads: dotted keys, a section as a string
    ("loop.corrector: kmeans\n", "sets loop.corrector, which a method sets"),
    ("loop.synthetic_fraction: 0.0\nloop.mode: augment\n", "sets loop.synthetic_fraction, loop.mode"),
    ('loop: \'{"corrector": "kmeans"}\'\n', "gives loop as a str: give it as a mapping"),
    ("loop: [1, 2]\n", "gives loop as a list"),
    ("trainer: [1]\n", "gives trainer as a list"),
    ("config: other.yaml\n", "names another file with a `config` key"),
    ("trainer: {config: other.yaml}\n", "names another file with a `config` key"),
]


@pytest.mark.parametrize(("text", "message"), REFUSED, ids=[m for _, m in REFUSED])
def test_a_layer_that_cannot_give_what_the_card_says_is_refused_before_anything_is_written(
    tmp_path: Path, text: str, message: str
) -> None:
    layer = tmp_path / "layer.yaml"
    layer.write_text(text)
    with pytest.raises(LayerError, match="layer") as refused:
        bench.run("quick", seeds="0-1", out=tmp_path / "b", tasks=["gaussian_prop1"], layers=[layer])
    assert message in str(refused.value) and str(layer) in str(refused.value)
    assert not (tmp_path / "b").exists()


def test_binary_garbage_and_a_dropped_metric_callback_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.yaml"
    garbage.write_bytes(bytes(range(128, 256)))
    with pytest.raises(LayerError, match="not readable YAML"):
        plan_bench("quick", seeds="0-1", tasks=["gaussian_prop1"], layers=[garbage])
    # a layer's trainer.callbacks replaces the list: PointMetrics logs eight_gaussians_ddpm's MMD
    dropped = tmp_path / "no_callbacks.yaml"
    dropped.write_text("trainer: {callbacks: []}\n")
    with pytest.raises(LayerError, match="drops PointMetrics, which the task needs"):
        plan_bench("quick", seeds="0-1", tasks=["eight_gaussians_ddpm"], layers=[dropped])
    with pytest.raises(LayerError, match="must be YAML files, got None"):
        plan_bench("quick", seeds="0-1", tasks=["gaussian_prop1"], layers=[None])  # type: ignore[list-item]


def test_a_layer_is_copied_into_the_bench_and_its_edits_are_refused_on_rerun(tmp_path: Path) -> None:
    layer = tmp_path / "quiet.yaml"
    layer.write_text("trainer: {enable_progress_bar: false}\n")
    out = tmp_path / "b"
    card = bench.run("quick", seeds="0-1", out=out, tasks=["gaussian_prop1"], layers=[layer], figures=False)
    (copy,) = (out / "layers").iterdir()
    recipe = card["tasks"]["gaussian_prop1"]["recipe"]
    assert recipe == ["gaussian_collapse.yaml", f"layers/{copy.name}"] and copy.read_bytes() == layer.read_bytes()
    config = (out / "runs" / "gaussian_prop1" / "method=real_only_seed=0" / "config.yaml").read_text()
    assert "enable_progress_bar: false" in config
    # the same bytes elsewhere: the same bench, which resumes (nothing reruns)
    moved = tmp_path / "elsewhere" / "q.yaml"
    moved.parent.mkdir()
    moved.write_bytes(layer.read_bytes())
    before = (out / "runs" / "gaussian_prop1" / "method=real_only_seed=0" / "point.json").stat().st_mtime_ns
    again = bench.run("quick", seeds="0-1", out=out, tasks=["gaussian_prop1"], layers=[moved], figures=False)
    assert again == card
    assert (out / "runs" / "gaussian_prop1" / "method=real_only_seed=0" / "point.json").stat().st_mtime_ns == before
    # an edited layer defines another bench
    layer.write_text("trainer: {enable_progress_bar: false, log_every_n_steps: 7}\n")
    with pytest.raises(BenchError, match="the digests of gaussian_prop1 differ: a recipe file or a layer changed"):
        bench.run("quick", seeds="0-1", out=out, tasks=["gaussian_prop1"], layers=[layer], figures=False)
    assert (
        json.loads((out / "bench_spec.json").read_text())["tasks"]["gaussian_prop1"]
        == card["tasks"]["gaussian_prop1"]["digest"]
    )


def test_the_callback_rule_compares_classes_not_their_spelling(tmp_path: Path) -> None:
    """A layer that restates PointMetrics by its short name, its defining module or as a single
    mapping keeps it: accepted."""
    for name, text in [
        ("short", "trainer: {callbacks: [{class_path: PointMetrics}]}\n"),
        ("module", "trainer: {callbacks: [{class_path: sclc_lightning.metrics.point_metrics.PointMetrics}]}\n"),
        ("single", "trainer: {callbacks: {class_path: sclc_lightning.callbacks.PointMetrics}}\n"),
    ]:
        layer = tmp_path / f"{name}.yaml"
        layer.write_text(text)
        plan = plan_bench("quick", seeds="0-1", tasks=["eight_gaussians_ddpm"], layers=[layer])
        assert len(plan.tasks[0].recipe) == 3, name


def test_a_relative_out_and_the_bytes_checked_are_what_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative --out works with a layer; the layer is read once, so rewriting the file right
    after the check (a race) changes nothing that runs; an edited copy in the bench is named."""
    from sclc_lightning.bench import runner

    monkeypatch.chdir(tmp_path)
    layer = tmp_path / "quiet.yaml"
    layer.write_text("trainer: {enable_progress_bar: false}\n")
    checked = layer.read_bytes()
    check = runner.check_layers

    def then_rewrite(*args: object, **kwargs: object) -> object:
        tasks = check(*args, **kwargs)  # type: ignore[arg-type]
        layer.write_text("loop: {corrector: kmeans, synthetic_fraction: 0.0, mode: augment}\n")
        return tasks

    monkeypatch.setattr(runner, "check_layers", then_rewrite)
    card = bench.run("quick", seeds="0-1", out="relative", tasks=["gaussian_prop1"], layers=["quiet.yaml"])
    (copy,) = (tmp_path / "relative" / "layers").iterdir()
    assert copy.read_bytes() == checked and card["tasks"]["gaussian_prop1"]["recipe"][-1] == f"layers/{copy.name}"
    config = tmp_path / "relative" / "runs" / "gaussian_prop1" / "method=uncorrected_seed=0" / "config.yaml"
    assert "corrector: null" in config.read_text() or "corrector:" not in config.read_text()
    monkeypatch.setattr(runner, "check_layers", check)
    layer.write_bytes(checked)
    copy.write_text("trainer: {enable_progress_bar: true}\n")
    with pytest.raises(LayerError, match=r"was edited: delete it \(the bench writes it again"):
        bench.run("quick", seeds="0-1", out="relative", tasks=["gaussian_prop1"], layers=["quiet.yaml"])
