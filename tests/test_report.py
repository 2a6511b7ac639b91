"""`sclc report` on real small runs: files, grouping over seeds, the theory overlay, the HTML."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sclc_lightning.cli import main
from sclc_lightning.report import ReportWarning, find_runs
from sclc_lightning.report.theory import _theory_curve
from sclc_lightning.theory import gaussian_collapse_rate

RECIPE = str(Path(__file__).parents[1] / "recipes" / "gaussian_collapse.yaml")


def test_report_from_real_runs(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    for seed in (0, 1):
        assert (
            main(
                [
                    "fit",
                    "--config",
                    RECIPE,
                    "--run_dir",
                    str(runs_dir / f"replace{seed}"),
                    "--loop.generations",
                    "4",
                    "--seed_everything",
                    str(seed),
                    "--loop.seed",
                    str(seed),
                ]
            )
            == 0
        )
    assert (
        main(
            [
                "fit",
                "--config",
                RECIPE,
                "--run_dir",
                str(runs_dir / "baseline"),
                "--loop.generations",
                "4",
                "--loop.synthetic_fraction",
                "0",
                "--loop.mode",
                "augment",
            ]
        )
        == 0
    )
    runs = find_runs([runs_dir])
    assert sorted(r.path.name for r in runs) == ["baseline", "replace0", "replace1"]  # logs/*/metrics.csv skipped
    groups = {r.group for r in runs}
    assert groups == {"λ=1.0 γ=0 replace none", "λ=0.0 γ=0 augment none"}  # the two seeds form one group
    replace = [r for r in runs if r.loop["mode"] == "replace"]
    theory = _theory_curve("sigma", replace)
    assert theory is not None and theory[1] == [0, 1, 2, 3, 4]
    start = (replace[0].series("sigma")[0] + replace[1].series("sigma")[0]) / 2
    assert math.isclose(theory[2][4], start * gaussian_collapse_rate(10) ** 4)
    assert _theory_curve("sigma", [r for r in runs if r.path.name == "baseline"]) is None
    assert _theory_curve("w2", replace) is None

    out = tmp_path / "report"
    assert main(["report", str(runs_dir), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    for metric in ("sigma", "w2", "num_synthetic", "time_training_s"):
        assert (out / f"{metric}.png").stat().st_size > 5_000 and f"<h3>{metric}</h3>" in page
    for run in runs:
        assert str(run.path) in page
    assert page.count("data:image/png;base64,") == len(list(out.glob("*.png")))  # self-contained
    # every figure says what it shows, the theory curve included, in its alt text and caption
    import re

    alts = re.findall(r'<img src="data:image/png;base64,[^"]*" alt="([^"]*)"', page)
    assert len(alts) == page.count("<img ") and all("against the generation" in a or "samples" in a for a in alts)
    assert not [a for a in alts if a.endswith(".png")]
    sigma = page.split("<h3>sigma</h3>")[1].split("</figure>")[0]
    assert "Dashed: the theory&#39;s prediction (λ=1.0 γ=0 replace none: " in sigma


def test_runs_are_grouped_by_every_setting_but_their_seeds() -> None:
    from sclc_lightning.report import Run, group_runs

    def run(seed: int, keep: float, lr: float = 0.1) -> Run:
        loop = {"synthetic_fraction": 1.0, "mode": "replace", "mode_kwargs": {"keep_real": keep}, "seed": seed}
        config = {"seed_everything": seed, "loop": loop, "model": {"init_args": {"lr": lr, "seed": seed}}}
        return Run(Path(f"/runs/{seed}-{keep}-{lr}"), {**config, "run_dir": f"/runs/{seed}"}, [{"generation": 0.0}])

    groups = group_runs([run(0, 0.0), run(1, 0.0), run(0, 0.1), run(1, 0.1), run(0, 0.1, lr=0.2)])
    assert {label: len(members) for label, members in groups.items()} == {
        "λ=1.0 γ=0 replace none keep_real=0.0 lr=0.1": 2,  # loop.mode_kwargs.keep_real, model.init_args.lr
        "λ=1.0 γ=0 replace none keep_real=0.1 lr=0.1": 2,
        "λ=1.0 γ=0 replace none keep_real=0.1 lr=0.2": 1,
    }
    # A setting present in one group only (mode_kwargs.max_synthetic) is named where it is set.
    plain = Run(Path("/runs/a"), {"loop": {"synthetic_fraction": 1.0, "mode": "accumulate"}}, [])
    capped = Run(
        Path("/runs/b"),
        {"loop": {"synthetic_fraction": 1.0, "mode": "accumulate", "mode_kwargs": {"max_synthetic": 10}}},
        [],
    )
    assert set(group_runs([plain, capped])) == {
        "λ=1.0 γ=0 accumulate none",
        "λ=1.0 γ=0 accumulate none max_synthetic=10",
    }


def test_an_identity_arm_is_labelled_gamma_0_whatever_its_strength_says() -> None:
    from sclc_lightning.report import Run, stability_note

    loop = {"synthetic_fraction": 0.6, "mode": "augment", "corrector": "identity", "corrector_kwargs": {"strength": 1}}
    run = Run(Path("/runs/identity"), {"loop": loop}, [])
    assert run.group == "λ=0.6 γ=0 augment identity"
    assert "(1+γ)/(2+γ)=0.50" in str(stability_note([run]))  # γ = 0 in the bound too, not 1


def test_the_stability_bound_is_named_where_lambda_exceeds_it() -> None:
    from sclc_lightning.report import Run, stability_note

    def note(**loop: object) -> str | None:
        return stability_note([Run(Path("r"), {"loop": loop}, [])])

    assert note(synthetic_fraction=0.5, mode="augment") is not None  # γ = 0: stable only for λ < 1/2
    assert note(synthetic_fraction=0.4, mode="augment") is None
    assert "(1+γ)/(2+γ)=0.67" in str(note(synthetic_fraction=0.7, mode="augment", corrector="optimal_transport"))
    assert note(synthetic_fraction=0.99, mode="augment", corrector="kmeans") is None  # default γ = ∞: bound 1
    assert note(synthetic_fraction=1.0, mode="replace") is None  # the theorem is about augmenting real data


def test_the_summary_quotes_last_and_late_values_per_group(tmp_path: Path) -> None:
    import csv

    from sclc_lightning.report import write_report

    for seed, offset in ((0, 0.0), (1, 2.0)):
        run = tmp_path / "runs" / f"s{seed}"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(f"loop: {{synthetic_fraction: 1.0, mode: replace, seed: {seed}}}\n")
        rows = "".join(f"{g},{g + offset}\n" for g in range(11))
        (run / "metrics.csv").write_text("generation,sigma\n" + rows)
    write_report([tmp_path / "runs"], tmp_path / "out")
    (row,) = [r for r in csv.DictReader(open(tmp_path / "out" / "summary.csv")) if r["metric"] == "sigma"]
    assert row["group"] == "λ=1.0 γ=0 replace none" and row["runs"] == "2" and row["last_generation"] == "10"
    assert float(row["last_mean"]) == 11.0 and float(row["last_std"]) == 1.0  # 10 and 12
    assert float(row["late_mean"]) == 9.0 and float(row["late_std"]) == 1.0  # generations 6..10: 8 and 10


def test_runs_driven_from_python_are_grouped_by_what_their_manifest_records(tmp_path: Path) -> None:
    """No config.yaml: the loop's settings come from the manifest (before, every such run fell
    into one group, 'λ=None')."""
    from helpers import GaussianModel, gaussian_points, loader, trainer

    from sclc_lightning import SelfConsumingLoop
    from sclc_lightning.callbacks.generation_csv import GenerationCSV
    from sclc_lightning.report import group_runs

    arms = {
        "replace": {"mode": "replace"},
        "kmeans4": {"corrector": "kmeans", "corrector_kwargs": {"num_clusters": 4, "strength": 1.0}},
        "kmeans8": {"corrector": "kmeans", "corrector_kwargs": {"num_clusters": 8, "strength": 1.0}},
    }
    for name, settings in arms.items():
        for seed in (0, 1):
            folder = tmp_path / "runs" / f"{name}_{seed}"
            loop = SelfConsumingLoop(0.5, 2, images_per_generation=20, seed=seed, **settings)  # type: ignore[arg-type]
            trainer(folder, [loop, GenerationCSV()], logger=True).fit(GaussianModel(), loader(gaussian_points(30)))
    runs = find_runs([tmp_path / "runs"])
    assert len(runs) == 6 and all(r.recorded is not None for r in runs)
    groups = group_runs(runs)
    assert sorted(groups) == [
        "λ=0.5 γ=0 replace none",
        "λ=0.5 γ=1.0 augment kmeans num_clusters=4",
        "λ=0.5 γ=1.0 augment kmeans num_clusters=8",
    ]
    assert all(sorted(r.loop["seed"] for r in members) == [0, 1] for members in groups.values())
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
    assert "num_clusters=8" in (tmp_path / "report" / "summary.csv").read_text()


def test_generation_axes_have_whole_number_ticks(tmp_path: Path, monkeypatch: object) -> None:
    """A figure over three generations showed ticks at 0.5, 1.5: generations are whole."""
    import matplotlib.figure

    from sclc_lightning.report import Run
    from sclc_lightning.report.figures import plot_metric

    ticks: list[list[float]] = []
    save = matplotlib.figure.Figure.savefig

    def recording(self: matplotlib.figure.Figure, *args: object, **kwargs: object) -> None:
        ticks.append([float(t) for t in self.axes[0].get_xticks()])
        save(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", recording)  # type: ignore[attr-defined]
    rows = [{"generation": float(g), "w2": 1.0 / (g + 1)} for g in range(3)]
    plot_metric("w2", {"a": [Run(Path("/runs/a"), {}, rows)]}, tmp_path / "w2.png")
    assert ticks and ticks[0] and all(t == int(t) for t in ticks[0]), ticks


def test_a_crowded_legend_goes_below_the_axes_and_is_never_cut_off(tmp_path: Path) -> None:
    """Eleven groups with long labels covered the curves and ran off the figure's left edge."""
    from PIL import Image

    from sclc_lightning.report import Run
    from sclc_lightning.report.figures import plot_metric

    rows = [{"generation": float(g), "w2": 1.0 / (g + 1)} for g in range(3)]
    plot_metric("w2", {"a": [Run(Path("/runs/a"), {}, rows)]}, tmp_path / "one.png")
    many = {f"group {i} " + "with a long label " * 4: [Run(Path(f"/runs/{i}"), {}, rows)] for i in range(11)}
    plot_metric("w2", many, tmp_path / "many.png")
    one, crowded = Image.open(tmp_path / "one.png").size, Image.open(tmp_path / "many.png").size
    assert crowded[1] > one[1] + 11 * 10  # a line of legend per group, below the axes


class MyNormal:
    """A user's own exact Gaussian, named otherwise: it declares the theory, the report draws it."""

    theory = "gaussian"


class Undeclared:
    """A model that declares no theory."""


def _gaussian_run(folder: Path, model: type | str, sigma: list[float], **loop: object) -> Path:
    """A run directory as `sclc fit` writes it: config.yaml (model, data's n = 10, loop) and metrics.csv."""
    import yaml

    path = model if isinstance(model, str) else f"{model.__module__}.{model.__qualname__}"
    folder.mkdir(parents=True)
    config = {
        "model": {"class_path": path, "init_args": {}},
        "data": {"class_path": "my.Data", "init_args": {"n": 10}},
        "loop": {"synthetic_fraction": 1.0, "mode": "replace", "seed": 0, **loop},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    (folder / "metrics.csv").write_text("generation,sigma\n" + "".join(f"{g},{s}\n" for g, s in enumerate(sigma)))
    return folder


def test_a_model_of_any_name_that_declares_the_gaussian_theory_gets_its_curves(tmp_path: Path) -> None:
    from sclc_lightning.report import write_report
    from sclc_lightning.theory import expected_log_sigma_ratio

    _gaussian_run(tmp_path / "runs" / "mine", MyNormal, [2.0, 1.5, 1.0, 0.5])
    (run,) = find_runs([tmp_path / "runs"])
    theory = _theory_curve("sigma", [run])
    assert theory is not None and theory[0] == "σ₀ α(n)ᵗ (theory)" and theory[1] == [0, 1, 2, 3]
    assert theory[2] == [2.0 * gaussian_collapse_rate(10) ** g for g in range(4)]
    # the theory derives log σt/σ0 from sigma, and draws its expectation over it
    assert run.series("log_sigma_ratio") == {g: math.log(s / 2.0) for g, s in enumerate([2.0, 1.5, 1.0, 0.5])}
    assert _theory_curve("log_sigma_ratio", [run]) == (
        "E[log σₜ/σ₀] (theory)",
        [0, 1, 2, 3],
        [expected_log_sigma_ratio(g, 10) for g in range(4)],
    )
    page = write_report([tmp_path / "runs"], tmp_path / "out").read_text()
    assert page.count("Dashed: the theory&#39;s prediction") == 2


def test_a_model_that_declares_no_theory_gets_no_curve(tmp_path: Path) -> None:
    from sclc_lightning.report import write_report

    _gaussian_run(tmp_path / "runs" / "plain", Undeclared, [2.0, 1.5, 1.0])
    (run,) = find_runs([tmp_path / "runs"])
    assert _theory_curve("sigma", [run]) is None
    page = write_report([tmp_path / "runs"], tmp_path / "out").read_text()
    assert "Dashed" not in page and not run.series("log_sigma_ratio")  # nothing derived either


def test_a_model_class_that_cannot_be_imported_is_warned_about_not_skipped_silently(tmp_path: Path) -> None:
    _gaussian_run(tmp_path / "runs" / "renamed", "tests_no_such_module.OldGaussian", [2.0, 1.0])
    with pytest.warns(ReportWarning, match=r"the model class 'tests_no_such_module.OldGaussian' \(`model.class_pa"):
        (run,) = find_runs([tmp_path / "runs"])
    with pytest.warns(ReportWarning, match=r"ModuleNotFoundError: No module named 'tests_no_such_module'"):
        assert _theory_curve("sigma", [run]) is None


def test_sclc_report_says_an_unimportable_class_once_on_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """D15: the warning came twice per run (and per metric), as a raw `file.py:123: UserWarning`."""
    for name in ("renamed0", "renamed1"):
        _gaussian_run(tmp_path / "runs" / name, "tests_no_such_module.OldGaussian", [2.0, 1.0], seed=int(name[-1]))
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "sclc report: warning: the model class 'tests_no_such_module.OldGaussian' (`model.class_path` in"
        " config.yaml) cannot be imported (ModuleNotFoundError: No module named 'tests_no_such_module'); no"
        " theory is drawn over the runs that name it (make its module importable where sclc report runs)."
    ]


class Misspelt:
    theory = "gausian"


def test_a_model_declaring_an_unregistered_theory_is_refused(tmp_path: Path) -> None:
    import pytest

    from sclc_lightning.report import ReportError

    _gaussian_run(tmp_path / "runs" / "typo", Misspelt, [2.0, 1.0])
    with pytest.raises(ReportError, match=r"Misspelt of run .* declares `theory` = 'gausian'; it must be one of \['ga"):
        find_runs([tmp_path / "runs"])
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 2


def test_the_mixing_is_read_from_the_policys_plans_not_its_name(tmp_path: Path) -> None:
    """A policy registered under another name that trains on the latest synthetic set only gets
    the replace curve; `replace` keeping 10% of the real data does not (it is not Prop. 1's process)."""
    from sclc_lightning.mixing import GenerationPlan, MixingPolicy, register_mixing_policy

    @register_mixing_policy("only_the_newest")
    class OnlyTheNewest(MixingPolicy):
        deciding = ()

        def plan(self, generation, real_size, synthetic_counts, seed):  # type: ignore[no-untyped-def]
            return GenerationPlan(generation, generation == 0, None, self.latest(generation, synthetic_counts))

    _gaussian_run(tmp_path / "newest", MyNormal, [2.0, 1.0], mode="only_the_newest")
    _gaussian_run(tmp_path / "kept", MyNormal, [2.0, 1.0], mode_kwargs={"keep_real": 0.1})
    (newest,) = find_runs([tmp_path / "newest"])
    (kept,) = find_runs([tmp_path / "kept"])
    theory = _theory_curve("sigma", [newest])
    assert theory is not None and theory[2] == [2.0, 2.0 * gaussian_collapse_rate(10)]
    assert _theory_curve("sigma", [kept]) is None


class Halves:
    """A model declaring a theory the test registers."""

    theory = "halving"


def test_a_theory_registered_by_a_user_is_drawn(tmp_path: Path) -> None:
    from sclc_lightning.report import Theory, TheoryCurve, TheoryGroup, register_theory, write_report

    @register_theory("halving")
    class Halving(Theory):
        def curve(self, metric: str, group: TheoryGroup) -> TheoryCurve | None:
            if metric != "sigma" or group.mixing is None or not group.mixing.replaces:
                return None
            start = group.mean(metric, group.generations[0])
            return TheoryCurve("σ0 2^-t (my theory)", [start / 2**g for g in group.generations])

        def derive(self, series):  # type: ignore[no-untyped-def]
            return {"sigma_halved": {g: v / 2 for g, v in series["sigma"].items()}}

    _gaussian_run(tmp_path / "runs" / "a", Halves, [4.0, 2.0, 1.0])
    (run,) = find_runs([tmp_path / "runs"])
    assert _theory_curve("sigma", [run]) == ("σ0 2^-t (my theory)", [0, 1, 2], [4.0, 2.0, 1.0])
    assert run.series("sigma_halved") == {0: 2.0, 1: 1.0, 2: 0.5}
    page = write_report([tmp_path / "runs"], tmp_path / "out").read_text()
    assert "<h3>sigma_halved</h3>" in page
    assert "Dashed: the theory&#39;s prediction (λ=1.0 γ=0 replace none: σ0 2^-t (my theory))" in page


def test_legends_name_each_method_as_a_person_would(tmp_path: Path, monkeypatch: object) -> None:
    import matplotlib.figure

    from sclc_lightning.report import Run, group_runs
    from sclc_lightning.report.figures import legend_label, plot_metric

    def runs(seeds: int, **loop: object) -> list[Run]:
        settings = {"synthetic_fraction": 0.5, "mode": "augment", **loop}
        rows = [{"generation": float(g), "w2": 1.0 / (g + 1)} for g in range(3)]
        return [Run(Path(f"/runs/{loop}-{s}"), {"loop": {**settings, "seed": s}}, rows) for s in range(seeds)]

    arms = [
        *runs(2),
        *runs(2, corrector="kmeans", corrector_kwargs={"strength": 1.0, "num_clusters": 8}),
        *runs(2, corrector="kmeans", corrector_kwargs={"strength": 1.0, "num_clusters": 4}),
        *runs(1, corrector="curate", corrector_kwargs={"reward": "negative_norm"}),
        *runs(1, corrector="curate", corrector_kwargs={"reward": "negative_norm", "strength": 3}),
        *runs(1, corrector="identity", corrector_kwargs={"strength": 1}),
        *runs(1, synthetic_fraction=1.0, mode="replace", model_corrector={"name": "neon", "w": -1.0}),
    ]
    groups = group_runs(arms)
    legends = sorted(legend_label(name, members) for name, members in groups.items())
    assert legends == [
        "curate, γ = 3; λ = 0.5, augment (1 run)",
        "curate, γ = ∞ (keeps only what it selects); λ = 0.5, augment (1 run)",
        "identity (no correction); λ = 0.5, augment (1 run)",
        "kmeans, γ = 1; λ = 0.5, augment; num_clusters=4 (2 seeds)",
        "kmeans, γ = 1; λ = 0.5, augment; num_clusters=8 (2 seeds)",
        "no correction, then neon on the weights; λ = 1, replace (1 run)",
        "no correction; λ = 0.5, augment (2 seeds)",
    ]
    drawn: list[str] = []
    save = matplotlib.figure.Figure.savefig

    def recording(self: matplotlib.figure.Figure, *args: object, **kwargs: object) -> None:
        legend = self.axes[0].get_legend()  # a figure without one adds nothing: the comparison below fails
        drawn.extend(text.get_text() for text in (legend.get_texts() if legend is not None else []))
        save(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", recording)  # type: ignore[attr-defined]
    plot_metric("w2", groups, tmp_path / "w2.png")
    # the figure shows them, with Gillman's bound named where λ = 0.5 passes it (γ = 0: no correction, identity)
    note = "\n  λ=0.5 ≥ (1+γ)/(2+γ)=0.50: outside the stability bound (Gillman Thm. 4.3)"
    assert sorted(drawn) == sorted(
        label + note if label.startswith(("identity", "no correction;")) else label for label in legends
    )
    assert "γ=inf" not in " ".join(drawn) and "none" not in " ".join(drawn)


def _fit(run_dir: Path, *args: str) -> None:
    """A small real run of the Gaussian recipe (3 generations, seed 0)."""
    common = ["--run_dir", str(run_dir), "--loop.generations", "3", "--seed_everything", "0"]
    assert main(["fit", "--config", RECIPE, *common, *args]) == 0


def _legends(monkeypatch: object) -> dict[str, list[str]]:
    """The legend entries of every figure saved from now on, by metric (its title)."""
    import matplotlib.figure

    legends: dict[str, list[str]] = {}
    save = matplotlib.figure.Figure.savefig

    def recording(self: matplotlib.figure.Figure, path: object, *args: object, **kwargs: object) -> None:
        legend = self.axes[0].get_legend()
        legends[self.axes[0].get_title()] = [t.get_text() for t in legend.get_texts()] if legend else []
        save(self, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", recording)  # type: ignore[attr-defined]
    return legends


def test_the_uncorrected_collapse_is_drawn_over_uncorrected_groups_only(tmp_path: Path, monkeypatch: object) -> None:
    """D1: sigma.png drew σ₀ α(n)ᵗ over the optimal-transport group too (log_sigma_ratio did not),
    and the legend said "σ₀ α(n)ᵗ (theory)" once per group without naming it."""
    from sclc_lightning.report import write_report

    _fit(tmp_path / "runs" / "none_s0")
    _fit(tmp_path / "runs" / "ot1_s0", "--loop.corrector", "optimal_transport", "--loop.corrector_kwargs.strength", "1")
    legends = _legends(monkeypatch)
    page = write_report([tmp_path / "runs"], tmp_path / "out").read_text()
    for metric in ("sigma", "log_sigma_ratio"):
        theories = [entry for entry in legends[metric] if "(theory)" in entry]
        assert theories == [
            f"{'σ₀ α(n)ᵗ' if metric == 'sigma' else 'E[log σₜ/σ₀]'} (theory): no correction; λ = 1, replace"
        ]
        caption = page.split(f"<h3>{metric}</h3>")[1].split("</figure>")[0]
        assert "Dashed: the theory&#39;s prediction (λ=1.0 γ=0 replace none: " in caption
        assert "optimal_transport:" not in caption
    assert sorted(legends["sigma"])[:2] == [
        "no correction; λ = 1, replace (1 run)",
        "optimal_transport, γ = 1; λ = 1, replace (1 run)",
    ]


@pytest.mark.parametrize(
    ("loop", "drawn"),
    [
        ({}, True),
        ({"corrector": "identity", "corrector_kwargs": {"strength": 1}}, True),  # the identity: γ = 0
        ({"corrector": "optimal_transport", "corrector_kwargs": {"strength": 0}}, True),  # γ = 0: no correction
        ({"corrector": "optimal_transport", "corrector_kwargs": {"strength": 1}}, False),
        ({"corrector": "optimal_transport", "corrector_kwargs": {"strength": float("inf")}}, False),
        ({"corrector": "kmeans", "corrector_kwargs": {"strength": float("inf")}}, False),
        ({"corrector": "kmeans"}, False),  # its default γ
        ({"corrector": {"class_path": "my.Corrector", "init_args": {}}}, False),  # γ unknown
        ({"model_corrector": {"name": "neon", "w": -1.0}}, False),  # the weights are corrected
    ],
)
def test_every_theory_of_the_uncorrected_loop_skips_corrected_groups_for_every_metric(
    tmp_path: Path, loop: dict[str, object], drawn: bool
) -> None:
    """D1: one rule for every metric of every built-in theory (linear regression's drew over a
    model corrector, and refused the identity)."""
    import yaml

    _gaussian_run(tmp_path / "gauss", MyNormal, [2.0, 1.5, 1.0], **loop)
    (run,) = find_runs([tmp_path / "gauss"])
    assert (_theory_curve("sigma", [run]) is not None) is drawn
    assert (_theory_curve("log_sigma_ratio", [run]) is not None) is drawn

    folder = tmp_path / "regression"
    folder.mkdir()
    config = {
        "model": {"class_path": "sclc_lightning.models.LinearRegressionModel", "init_args": {"dim": 2}},
        "data": {"class_path": "my.Data", "init_args": {"n": 10, "dim": 2, "noise_std": 1.0}},
        "loop": {"synthetic_fraction": 1.0, "mode": "replace", "seed": 0, **loop},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    (folder / "metrics.csv").write_text("generation,test_error\n0,0.5\n1,0.9\n2,1.3\n")
    (run,) = find_runs([folder])
    assert (_theory_curve("test_error", [run]) is not None) is drawn


def test_runs_of_one_seed_count_once(tmp_path: Path, monkeypatch: object, capsys) -> None:  # type: ignore[no-untyped-def]
    """D4: two runs of seed 0 in a group were '(2 seeds)' with a zero-width band, and weighed
    twice in the mean: one seed counts once, the one kept is named."""
    import csv

    from sclc_lightning.report import group_runs

    for name, seed, offset in (("s0", 0, 0.0), ("s0_copy", 0, 10.0), ("s1", 1, 2.0)):
        _gaussian_run(tmp_path / "runs" / name, Undeclared, [g + offset for g in range(5)], seed=seed)
    with pytest.warns(ReportWarning, match=r"the runs .*/s0, .*/s0_copy have the same seeds \(loop.seed=0\)"):
        (members,) = group_runs(find_runs([tmp_path / "runs"])).values()
    assert [r.path.name for r in members] == ["s0", "s1"]
    legends = _legends(monkeypatch)
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    assert legends["sigma"] == ["no correction; λ = 1, replace (2 seeds)"]
    (warning,) = capsys.readouterr().err.splitlines()
    runs = tmp_path / "runs"
    assert warning == (
        f"sclc report: warning: group 'λ=1.0 γ=0 replace none': the runs {runs / 's0'}, {runs / 's0_copy'} have the"
        f" same seeds (loop.seed=0); one seed counts once: {runs / 's0'} is kept (it reached generation 4, the"
        f" furthest); left out of the mean, the band and summary.csv: {runs / 's0_copy'}."
    )
    (row,) = [r for r in csv.DictReader(open(tmp_path / "out" / "summary.csv")) if r["metric"] == "sigma"]
    assert row["runs"] == "2" and float(row["last_mean"]) == 5.0 and float(row["last_std"]) == 1.0  # 4 and 6
    page = (tmp_path / "out" / "report.html").read_text()
    assert f"λ=1.0 γ=0 replace none (left out: the same seeds as {runs / 's0'})" in page


def test_a_setting_only_some_groups_record_names_them() -> None:
    """`passes_per_generation=20` beside runs that never recorded it: the legend said "accumulate" for both."""
    from sclc_lightning.report import Run, group_runs

    rows = [{"generation": 0.0, "w2": 1.0}]
    fixed = {"mode": "accumulate", "images_per_generation": 100, "seed": 0}
    passes = {"mode": "accumulate", "images_per_generation": None, "passes_per_generation": 20.0, "seed": 0}
    names = sorted(group_runs([Run(Path("a"), {"loop": fixed}, rows), Run(Path("b"), {"loop": passes}, rows)]))
    assert any("passes_per_generation=20.0" in name for name in names), names
    assert any("images_per_generation=100" in name for name in names), names


def _scales(monkeypatch: object) -> dict[str, str]:
    """The vertical scale of every figure saved from now on, by metric (its title)."""
    import matplotlib.figure

    scales: dict[str, str] = {}
    save = matplotlib.figure.Figure.savefig

    def recording(self: matplotlib.figure.Figure, path: object, *args: object, **kwargs: object) -> None:
        scales[self.axes[0].get_title()] = self.axes[0].get_yscale()
        save(self, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", recording)  # type: ignore[attr-defined]
    return scales


def test_a_metrics_axis_scale_is_chosen_from_the_command_line(tmp_path: Path, monkeypatch: object, capsys) -> None:  # type: ignore[no-untyped-def]
    """`--log-scale` and `--linear-scale` override the three-decade rule per metric; a metric no run
    logged, one given both scales, or an empty name is refused in one line."""
    _gaussian_run(tmp_path / "runs" / "a", Undeclared, [4.0, 2.0, 1.0, 0.5])  # one decade: linear by default
    (tmp_path / "runs" / "a" / "metrics.csv").write_text(
        "generation,sigma,kl\n0,4.0,0.001\n1,2.0,0.1\n2,1.0,10.0\n3,0.5,100.0\n"  # kl: five decades
    )
    base = ["report", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    scales = _scales(monkeypatch)
    assert main(base) == 0
    assert scales == {"sigma": "linear", "kl": "log"}
    assert main([*base, "--log-scale", "sigma", "--linear-scale", "kl"]) == 0
    assert scales == {"sigma": "log", "kl": "linear"}
    capsys.readouterr()
    for wrong, said in (
        (
            ["--log-scale", "sigam"],
            "No run logged the metric 'sigam' (did you mean 'sigma'?); the runs logged kl, sigma.",
        ),
        (["--log-scale", "kl", "--linear-scale", "kl"], "metric 'kl' is given both --log-scale and --linear-scale"),
        (["--log-scale", " "], "--log-scale needs a metric's name, got ' '."),
    ):
        assert main([*base, *wrong]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("sclc report: ") and said in line, line
    elsewhere = ["report", str(tmp_path / "runs"), "--out", str(tmp_path / "new" / "out"), "--log-scale", "SIGMA"]
    assert main(elsewhere) == 2  # refused before anything is written
    assert "(did you mean 'sigma'?)" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_a_log_axis_over_values_not_all_positive_is_warned_about(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _gaussian_run(tmp_path / "runs" / "a", Undeclared, [1.0, 0.0, -1.0])
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--log-scale", "sigma"]) == 0
    assert (
        "sclc report: warning: sigma has values <= 0: its logarithmic axis leaves them out." in capsys.readouterr().err
    )
