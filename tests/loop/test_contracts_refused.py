"""What a hostile try of the restructured loop found, each refused where it is given, naming the
part and the fix: a selecting corrector's `draws`, registrations that clash or are not names,
typos with their nearest valid value, a score's settings, a loop lowered below its checkpoint,
a λ that is a tensor or absurd; and what is accepted, done right (a corrector returning a view)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import fit
from torch.utils.data import DataLoader

from sclc_lightning import Corrector, SelfConsumingLoop, register_corrector
from sclc_lightning.correctors import SelectingCorrector, VerifierCorrector
from sclc_lightning.loop.fingerprint import ResumeRefused
from sclc_lightning.loop.run import LoopState, check_extent
from sclc_lightning.models import GaussianModel
from sclc_lightning.store import SyntheticStore


class Draws(SelectingCorrector):
    def __init__(self, how: Any, strength: float = float("inf")) -> None:
        super().__init__(strength)
        self.how = how

    def draws(self, keep: int) -> Any:
        return self.how(keep)

    def choose(self, batch: Any, *, keep: int, generation: int, generator: Any, reference: Any) -> torch.Tensor:
        return torch.arange(min(len(batch), keep))


@pytest.mark.parametrize(("how", "shown"), [(lambda k: -5, "-5"), (lambda k: 0, "0"), (lambda k: k * 1.5, "1500000.0")])
def test_a_selecting_correctors_draws_must_be_an_integer_of_at_least_keep(how: Any, shown: str) -> None:
    with pytest.raises(ValueError, match=rf"Draws.draws\(1000000\) returned {shown}: it must return an integer >= "):
        SelfConsumingLoop(0.5, 2, corrector=Draws(how))


def test_registration_clashes_and_bad_names_are_refused_at_the_decorator() -> None:
    code = (
        "from sclc_lightning import Corrector, register_corrector\n"
        "try:\n"
        "    @register_corrector('kmeans')\n"
        "    class Mine(Corrector):\n"
        "        def correct(self, batch, *, generation, generator, reference): return batch.data\n"
        "except ValueError as err: print('refused:', err)\n"
    )
    # a fresh process: nothing has listed the correctors yet, the built-ins are found first
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "refused: A corrector is already registered as 'kmeans': KMeansCorrector" in done.stdout, done.stderr
    for name in ("", "my corr", 3):
        with pytest.raises(ValueError, match="needs a name of letters, digits"):
            register_corrector(name)  # type: ignore[arg-type]


def test_typos_name_the_nearest_valid_value() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"mode": "acumulate"}, "did you mean 'accumulate'"),
        ({"corrector": "kmean"}, "did you mean 'kmeans'"),
        ({"corrector": "kmeans", "corrector_kwargs": {"num_cluster": 3}}, "did you mean 'num_clusters'"),
        ({"mode": "accumulate", "mode_kwargs": {"max_synthtic": 5}}, "did you mean 'max_synthetic'"),
        ({"model_corrector": "noen"}, "did you mean 'neon'"),
    ]
    for arguments, says in cases:
        with pytest.raises(ValueError, match=says):
            SelfConsumingLoop(0.5, 2, **arguments)
    with pytest.raises(ValueError, match="did you mean 'threshold'"):
        VerifierCorrector(lambda data, conditions: data[:, 0], rule="treshold", threshold=0.0)


def test_a_scores_settings_and_a_missing_verifier_are_refused_when_given() -> None:
    for spec, says in [
        (None, r"`verifier` is required: a callable, an import path"),
        ({"name": "linear_residual", "weigths": [1.0]}, r"unknown key 'weigths' \(did you mean 'weights'\?\)"),
        ("linear_residual", r"the score 'linear_residual' needs the settings \['weights'\]"),
    ]:
        with pytest.raises(ValueError, match=says):
            SelfConsumingLoop(0.5, 2, corrector="verify", corrector_kwargs={"verifier": spec, "threshold": 0.0})


def test_a_checkpoint_past_the_last_generation_is_refused() -> None:
    state = LoopState("run", {}, None, 3)
    with pytest.raises(ResumeRefused, match=r"ends at generation 3, past this fit's last \(`generations=2`\)"):
        check_extent(state, 2)
    check_extent(state, 3)  # complete: said, not refused
    check_extent(state, 5)  # extended: trains on


def test_a_lambda_that_is_a_tensor_or_absurd_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must be a Python number >= 0 or a schedule, got tensor\(0.5000\)"):
        SelfConsumingLoop(torch.tensor(0.5), 2)
    loop = SelfConsumingLoop(1e300, 1, output_dir=tmp_path / "s")
    points = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"`synthetic_fraction` 1e\+300 asks for .* synthetic points per generation"):
        fit(tmp_path, GaussianModel(dim=2), DataLoader(points, batch_size=10), loop)


class Transposed(Corrector):
    """Returns a view with other strides: the same values, not in row order."""

    def correct(self, batch: Any, *, generation: int, generator: Any, reference: Any) -> torch.Tensor:
        return batch.data.t().contiguous().t()


def test_a_corrector_returning_a_view_is_stored_in_row_order(tmp_path: Path) -> None:
    loop = SelfConsumingLoop(0.5, 1, corrector=Transposed(), output_dir=tmp_path / "s", seed=0)
    points = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    fit(tmp_path, GaussianModel(dim=2), DataLoader(points, batch_size=10), loop)
    record = SyntheticStore(tmp_path / "s").records()[1]
    assert record.count == 10


def test_a_metric_callback_asked_of_metrics_names_its_home() -> None:
    import sclc_lightning.metrics as metrics

    with pytest.raises(AttributeError, match=r"callbacks are imported from sclc_lightning.callbacks"):
        metrics.PointMetrics  # noqa: B018
