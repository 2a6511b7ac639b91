import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sclc_lightning import __version__
from sclc_lightning.cli import main
from sclc_lightning.models import GaussianModel


def test_version_and_help(capsys) -> None:  # type: ignore[no-untyped-def]
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert capsys.readouterr().out.strip() == f"sclc-lightning {__version__}"
    assert main([]) == 0 and "usage: sclc" in capsys.readouterr().out
    assert main(["correctors"]) == 0 and "optimal_transport" in capsys.readouterr().out.split()
    assert main(["modes"]) == 0 and {"augment", "accumulate", "replace", "fresh"} <= set(
        capsys.readouterr().out.split()
    )


def test_mode_settings_from_the_command_line(tmp_path: Path) -> None:
    """Kazdan's accumulate-subsample, as the recipe's comment says to run it."""
    import csv

    run_dir = tmp_path / "run"
    args = ["fit", "--config", str(Path(__file__).parents[1] / "recipes" / "gaussian_accumulate.yaml")]
    args += ["--run_dir", str(run_dir), "--wandb", "false", "--loop.generations", "3"]
    args += ["--loop.mode_kwargs.max_synthetic", "15"]
    assert main(args) == 0
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [float(r["num_synthetic"]) for r in rows] == [0.0, 10.0, 15.0, 15.0]  # 10 per generation, capped at 15


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("sclc")  # the console script beside this interpreter
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"sclc-lightning {__version__}"


def test_fit_with_two_processes_writes_one_table(tmp_path: Path) -> None:
    """`sclc fit` under DDP (ddp_spawn, 2 CPU processes): rank 0 writes the run's files once."""
    import csv

    run_dir = tmp_path / "run"
    args = ["fit", "--config", str(Path(__file__).parents[1] / "recipes" / "eight_gaussians_ddpm.yaml")]
    args += ["--run_dir", str(run_dir), "--trainer.devices", "2", "--trainer.strategy", "ddp_spawn", "--wandb", "false"]
    args += ["--loop.generations", "1", "--loop.images_per_generation", "2048", "--loop.initial_images", "2048"]
    args += ["--data.init_args.n", "300", "--trainer.callbacks", "[]"]
    assert main(args) == 0
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [r["generation"] for r in rows] == ["0", "1"]  # one row per generation, not one per rank
    assert [r["num_synthetic"] for r in rows] == ["0", "300"] and all(r["num_trained"] == "2048" for r in rows)
    assert (run_dir / "config.yaml").is_file()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            ["--loop.synthetic_fraction", "abc"],
            r"`synthetic_fraction` must be a finite number >= 0 or a schedule .* got 'abc'\.",
        ),
        (["--loop.synthetic_fraction", "-1"], r"`synthetic_fraction` must be a finite number >= 0, got -1\.0\."),
        (["--loop.mode", "mix"], r"`mode` must be one of \['accumulate', 'augment', 'fresh', 'replace'.*got 'mix'"),
        (["--data.init_args.n", "0"], r"`n` must be an integer >= 1, got 0\."),
        (["--trainer.max_epochs", "x"], r'Parser key "trainer.max_epochs": Expected a <class \'int\'> Given value: x'),
        (["--loop.bogus", "3"], r"unrecognized arguments: --loop.bogus 3"),
        (["--trainer.max_time", "abc"], r"`Timer\(duration='abc'\)` is not a valid duration"),  # Lightning's own
        (  # a typo in a class's arguments: the argument refused and the one meant
            ["--model.init_args.dimm", "3"],
            r"Problem with given class_path '.*GaussianModel': Option 'dimm' is not accepted \(did you mean 'dim'\?\)$",
        ),
        (  # nothing close: the arguments the class takes
            ["--data.init_args.size", "3"],
            r"Problem with given class_path '.*': Option 'size' is not accepted"
            r" \(GaussianDataModule takes n, .*batch_size",
        ),
        (  # a wrong value of an argument that may be None: the detail, through the nested union
            ["--data.init_args.seed", "abc"],
            r"Problem with given class_path '.*GaussianDataModule': Parser key \"seed\": Expected a <class 'int'>"
            r" Given value: abc$",
        ),
        (
            ["--model.init_args.dim", "abc"],
            r"Problem with given class_path '.*GaussianModel': Parser key \"dim\": Expected a <class 'int'>\."
            r" Got value: abc$",
        ),
        (  # the recipe's dim is in both blocks: changing one is named, not a shape error in training
            ["--data.init_args.dim", "1"],
            r"model\.init_args\.dim=2 but data\.init_args\.dim=1: they describe the same points; set both",
        ),
        (  # refused when fitting starts, still before training
            ["--loop.mode", "fresh", "--loop.mode_kwargs.real_per_generation", "1000"],
            r"`real_per_generation` must be at most the size of the real pool \(50\), got 1000\.",
        ),
    ],
)
def test_a_bad_value_is_reported_in_two_lines(tmp_path: Path, capsys, override: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    import re

    recipe = str(Path(__file__).parents[1] / "recipes" / "gaussian_toy.yaml")
    args = ["fit", "--config", recipe, "--run_dir", str(tmp_path / "r"), "--wandb", "false", *override]
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(("sclc fit", "(`sclc fit"))]
    assert len(lines) == 2 and re.search(message, lines[0]), err
    assert "Traceback" not in err and "usage:" not in err
    with pytest.raises(Exception, match=message.split(r"\.")[0][:30]):
        main([*args, "--debug"])  # the full error, for a developer


def test_a_typo_in_a_config_files_keys_gets_the_key_meant(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    recipe = str(Path(__file__).parents[1] / "recipes" / "gaussian_collapse.yaml")
    for text, meant in (
        ("loop:\n  generation: 5\n", "loop.generations"),
        ("trainr:\n  accelerator: cpu\n", "trainer.accelerator"),
    ):
        layer = tmp_path / "layer.yaml"
        layer.write_text(text)
        assert main(["fit", "--config", recipe, "--config", str(layer), "--run_dir", str(tmp_path / "r")]) == 2
        line = capsys.readouterr().err.splitlines()[0]
        assert line.endswith(f"; did you mean {meant!r}?"), line


def test_a_value_no_type_of_a_union_takes_names_them_all(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Was: ``--seed_everything abc`` said "Expected a <class 'bool'>", though an int is taken too."""
    recipe = str(Path(__file__).parents[1] / "recipes" / "gaussian_collapse.yaml")
    assert main(["fit", "--config", recipe, "--run_dir", str(tmp_path / "r"), "--seed_everything", "abc"]) == 2
    line = capsys.readouterr().err.splitlines()[0]
    assert line.endswith(
        "Parser key \"seed_everything\": Expected a <class 'bool'> or a <class 'int'> Given value: abc"
    )


class Inner:
    """A class a model takes as an argument, for the test below."""

    def __init__(self, width: int = 1, depth: int = 1) -> None:
        self.width, self.depth = width, depth


class WithInner(GaussianModel):
    def __init__(self, inner: Inner | None = None, dim: int = 2) -> None:
        super().__init__(dim=dim)
        self.inner = inner


def test_a_typo_in_a_nested_class_is_checked_against_that_class(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Was: the hint came from the outer class (``WithInner takes inner, dim``), and the message of
    an argument that may be None stopped at ``Errors:``."""
    recipe = str(Path(__file__).parents[1] / "recipes" / "gaussian_collapse.yaml")
    args = ["fit", "--config", recipe, "--run_dir", str(tmp_path / "r"), "--wandb", "false"]
    args += ["--model", "tests.test_cli.WithInner", "--model.init_args.inner", "tests.test_cli.Inner"]
    assert main([*args, "--model.init_args.inner.init_args.widht", "3"]) == 2
    line = capsys.readouterr().err.splitlines()[0]
    assert line.endswith(
        "Parser key \"inner\": Problem with given class_path 'tests.test_cli.Inner': Option 'widht' is not"
        " accepted (did you mean 'width'?)"
    ), line
    assert not (tmp_path / "r").exists()


def test_switching_the_recipes_corrector_off_drops_its_settings(tmp_path: Path) -> None:
    import yaml

    # gaussian_toy configures optimal_transport with strength 1.0: `--loop.corrector null` (as in a
    # grid's `--set loop.corrector=optimal_transport,null`) must run the uncorrected arm.
    recipe = str(Path(__file__).parents[1] / "recipes" / "gaussian_toy.yaml")
    args = ["fit", "--config", recipe, "--run_dir", str(tmp_path / "r"), "--wandb", "false"]
    assert main([*args, "--loop.corrector", "null", "--loop.generations", "1"]) == 0
    loop = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["loop"]
    assert loop["corrector"] is None and loop["corrector_kwargs"] is None


def half_spread(module, num_samples, *, generator=None):  # type: ignore[no-untyped-def]
    """A sampler function for the test below: the module's own, at half its spread."""
    return module.mean + 0.5 * (module.sample(num_samples, generator=generator) - module.mean)


def test_the_sampler_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--loop.sampler` takes a method name or `package.module:function`; a sampler the loop
    cannot call is refused in one line before anything trains."""
    import json

    recipe = str(Path(__file__).parents[1] / "recipes" / "gaussian_collapse.yaml")
    base = ["fit", "--config", recipe, "--wandb", "false", "--loop.generations", "1"]
    assert main([*base, "--run_dir", str(tmp_path / "f"), "--loop.sampler", "tests.test_cli:half_spread"]) == 0
    manifest = json.loads((tmp_path / "f" / "synthetic" / "manifest.json").read_text())
    assert re.fullmatch(r"tests\.test_cli:half_spread#code:[0-9a-f]{16}", manifest["config"]["sampler"])
    capsys.readouterr()
    assert main([*base, "--run_dir", str(tmp_path / "m"), "--loop.sampler", "configure_optimizers"]) == 2
    error = capsys.readouterr().err
    assert "GaussianModel.configure_optimizers() -> 'torch.optim.Optimizer' cannot be called as" in error
    assert "sampler='generate'" in error and error.count("\n") == 2  # one line, and the hint to --help
    assert not (tmp_path / "m" / "synthetic").exists()


def _toy(tmp_path: Path, *extra: str) -> list[str]:
    recipe = str(Path(__file__).parents[1] / "recipes" / "gaussian_toy.yaml")
    return ["fit", "--config", recipe, "--wandb", "false", "--loop.generations", "1", *extra]


def _one_message(capsys: pytest.CaptureFixture[str], *parts: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sclc fit")]
    assert "Traceback" not in err and len(lines) == 1, err
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def test_a_run_dir_that_is_a_file_is_one_message_before_any_logger_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")  # W&B on: it must not start (and write) before the refusal
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    recipe = str(Path(__file__).parents[1] / "recipes" / "gaussian_toy.yaml")
    arguments = ["fit", "--config", recipe, "--wandb", "true", "--loop.generations", "1"]
    assert main([*arguments, "--run_dir", str(afile)]) == 2
    _one_message(capsys, f"--run_dir {afile}: it is a regular file, not a folder")
    assert main([*arguments, "--run_dir", str(afile / "run")]) == 2
    _one_message(capsys, f"{afile} is a file, so no folder can be made under it")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # no wandb folder, nothing written


def test_a_malicious_checkpoint_is_refused_in_one_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint that would run code when unpickled: torch's weights-only loader refuses it
    (nothing runs), and the command says so in a line instead of an unpickling traceback."""
    import pickle

    class Payload:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    ckpt = tmp_path / "evil.ckpt"
    ckpt.write_bytes(pickle.dumps({"state_dict": {}, "payload": Payload()}))
    assert main(_toy(tmp_path, "--run_dir", str(tmp_path / "run"), "--ckpt_path", str(ckpt))) == 2
    _one_message(capsys, "cannot be loaded safely", "weights-only")
    assert not (tmp_path / "pwned").exists()


def test_a_failing_external_corrector_is_its_own_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = Path(__file__).parent / "correctors" / "scripts" / "external_corrector.py"
    command = f"{sys.executable} {script} fail {{input}} {{output}}"
    args = _toy(tmp_path, "--run_dir", str(tmp_path / "run"), "--loop.corrector", "command")
    args += ["--loop.corrector_kwargs", json.dumps({"command": command})]
    assert main(args) == 2
    _one_message(capsys, "exit code 3", "the humanoid fell over")


def test_resuming_with_ckpt_path_last_and_model_settings_that_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--ckpt_path last` finds the run's own checkpoint; a model setting that differs from the
    checkpoint's (which Lightning would silently take) is refused by name, or applied when asked."""
    import csv

    import yaml

    run = tmp_path / "run"
    assert main(_toy(tmp_path, "--run_dir", str(run))) == 0
    capsys.readouterr()
    assert main(_toy(tmp_path, "--run_dir", str(tmp_path / "other"), "--ckpt_path", "last")) == 2
    _one_message(capsys, "holds no checkpoint of the loop to resume from")
    changed = ["--run_dir", str(run), "--ckpt_path", "last", "--model.init_args.target_std", "2.0"]
    assert main(_toy(tmp_path, *changed, "--loop.generations", "2")) == 2
    _one_message(capsys, "model.init_args.target_std: checkpoint 1.0 vs now 2.0", "--model_settings_on_resume")
    assert main(_toy(tmp_path, *changed, "--loop.generations", "2", "--model_settings_on_resume", "config")) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["init_args"]["target_std"] == 2.0
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(float(r["generation"])) for r in rows] == [0, 1, 2]  # the run went on from its checkpoint


def test_a_refused_resume_leaves_no_new_log_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(_toy(tmp_path, "--run_dir", str(run))) == 0
    before = sorted(p.name for p in (run / "logs").iterdir())
    refused = _toy(tmp_path, "--run_dir", str(run), "--ckpt_path", "last", "--loop.seed", "5")
    assert main(refused) == 2  # the loop's settings changed: refused when the fit starts
    _one_message(capsys, "Cannot resume", "seed: checkpoint 0 vs now 5")
    assert sorted(p.name for p in (run / "logs").iterdir()) == before
