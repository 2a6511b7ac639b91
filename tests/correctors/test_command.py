"""The command corrector against a small external script shipped with the tests."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import GaussianModel, loader

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.correctors import CommandCorrector, CorrectorProcessError, make_corrector
from sclc_lightning.items.codec import SyntheticBatch

SCRIPT = Path(__file__).parent / "scripts" / "external_corrector.py"


def command(mode: str, fmt: str = "safetensors") -> list[str]:
    extra = ["{conditions}"] if fmt == "npy" else []
    return [sys.executable, str(SCRIPT), mode, "{input}", "{output}", *extra]


def batch(num: int = 6, labels: bool = False) -> SyntheticBatch:
    data = torch.linspace(-3, 3, num * 2).reshape(num, 2)
    return SyntheticBatch(data, torch.arange(num), torch.arange(num) % 3 if labels else None)


def correct(corrector: CommandCorrector, b: SyntheticBatch) -> torch.Tensor:
    out = corrector.correct(b, generation=2, generator=torch.Generator(), reference=None)  # type: ignore[arg-type]
    assert isinstance(out, torch.Tensor)
    return out


@pytest.mark.parametrize("fmt", ["safetensors", "npy"])
def test_program_output_replaces_the_batch(fmt: str) -> None:
    b = batch(labels=True)
    assert torch.equal(correct(CommandCorrector(command("clip", fmt), file_format=fmt), b), b.data.clamp(-1, 1))
    # conditions reach the program with their rows
    labelled = correct(CommandCorrector(command("label", fmt), file_format=fmt), b)
    assert torch.equal(labelled, b.data + b.conditions[:, None])  # type: ignore[index]


def test_strength_blends_and_registry_name() -> None:
    b = batch()
    corrector = make_corrector("command", {"command": command("clip"), "strength": 1.0})
    assert isinstance(corrector, CommandCorrector)
    assert torch.allclose(correct(corrector, b), (b.data + b.data.clamp(-1, 1)) / 2)
    assert math.isinf(CommandCorrector("prog {input} {output}").strength)  # the paper's full replacement


def test_failing_program_reports_exit_code_and_stderr_tail() -> None:
    with pytest.raises(CorrectorProcessError, match=r"(?s)exit code 3.*the humanoid fell over"):
        correct(CommandCorrector(command("fail")), batch())


def test_hanging_program_is_killed_at_the_timeout() -> None:
    start = time.perf_counter()
    with pytest.raises(CorrectorProcessError, match=r"(?s)did not finish within 2 s.*thinking forever"):
        correct(CommandCorrector(command("hang"), timeout=2), batch())
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize(
    ("mode", "match"),
    [("shape", r"shape \(5, 2\), expected \(6, 2\)"), ("nan", "non-finite"), ("nothing", "wrote no output")],
)
def test_bad_output_is_refused(mode: str, match: str) -> None:
    with pytest.raises(CorrectorProcessError, match=match):
        correct(CommandCorrector(command(mode)), batch())


def test_bad_templates_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown placeholder"):
        CommandCorrector("prog {inputs}")
    with pytest.raises(ValueError, match="empty"):
        CommandCorrector("")


def test_in_the_loop(tmp_path: Path) -> None:
    from helpers import trainer

    loop = SelfConsumingLoop(
        1.0,
        2,
        images_per_generation=20,
        mode="replace",
        corrector="command",
        corrector_kwargs={"command": command("clip")},
        output_dir=tmp_path / "s",
    )
    data = torch.randn(20, 2, generator=torch.Generator().manual_seed(0)) * 3
    trainer(tmp_path, [loop]).fit(GaussianModel(), train_dataloaders=loader(data))
    from safetensors.torch import load_file

    stored = load_file(str(next((tmp_path / "s" / "gen_0002").glob("*.safetensors"))))
    assert stored["data"].shape == (20, 2) and float(stored["data"].abs().max()) <= 1.0


@pytest.mark.parametrize(
    ("mode", "written"), [("int8", "torch.int8"), ("bool", "torch.bool"), ("float64", "torch.float64")]
)
@pytest.mark.parametrize("fmt", ["safetensors", "npy"])
def test_another_dtype_is_refused_never_cast(mode: str, written: str, fmt: str) -> None:
    with pytest.raises(
        CorrectorProcessError, match=rf"wrote data of dtype {written}, but the synthetic data is torch.float32.*float32"
    ):
        correct(CommandCorrector(command(mode, fmt), file_format=fmt), batch(labels=True))


def test_token_data_goes_through_a_program_and_keeps_its_dtype() -> None:
    tokens = SyntheticBatch(torch.tensor([[3, -4], [0, 7]]), torch.arange(2))
    out = correct(CommandCorrector(command("clip")), tokens)
    assert out.dtype == torch.int64 and out.tolist() == [[1, -1], [0, 1]]
