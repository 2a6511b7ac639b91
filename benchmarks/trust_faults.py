"""The trust cases of issue 31, each run in-process and classified the way the fault table does.

A case is a thing a researcher or a hostile user does; its outcome is one of:

- ``named``: refused in one message that names the argument, file or molecule and the fix, before
  generation 0 trained when it was knowable then;
- ``ok``: the right result (seeds that vary, an edit detected, a count said truthfully);
- ``late``: refused only after generation 0 started training, although knowable before;
- ``bare``: refused with a message that names neither the argument nor the fix;
- ``silent``: a wrong result and no word.

Usage: ``python benchmarks/fault_injection.py --trust`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import functools
import importlib
import math
import sys
import tempfile
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

Outcome = tuple[str, str]


class _Batches(pl.Callback):
    def __init__(self) -> None:
        self.count = 0

    def on_train_batch_start(self, *args: Any) -> None:
        self.count += 1


def _trainer(root: Path, callbacks: list[Any], **kwargs: Any) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=root,
        callbacks=callbacks,
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        **kwargs,
    )


def _fit(root: Path, loop: Any, model: Any = None, data: Any = None, callbacks: list[Any] | None = None) -> int:
    """Fit; the training batches run (raises what the fit raises, with ``batches`` attached)."""
    from sclc_lightning.models import GaussianModel

    counter = _Batches()
    model = model if model is not None else GaussianModel(dim=2)
    data = data if data is not None else DataLoader(torch.randn(40, 2), batch_size=40)
    trainer = _trainer(root, [loop, *(callbacks or []), counter])
    try:
        if isinstance(data, pl.LightningDataModule):
            trainer.fit(model, datamodule=data)
        else:
            trainer.fit(model, train_dataloaders=data)
    except Exception as err:
        err.batches = counter.count  # type: ignore[attr-defined]
        raise
    return counter.count


def _refused(action: Callable[[], Any], *names: str) -> Outcome:
    """``named`` when ``action`` raises before any training batch with every one of ``names`` in
    its message; ``late`` after one; ``bare`` without the names; ``silent`` without an error."""
    try:
        action()
    except Exception as err:
        message = f"{type(err).__name__}: {err}"
        if getattr(err, "batches", 0):
            return "late", message
        return ("named" if all(n in str(err) for n in names) else "bare"), message
    return "silent", "no error"


def _loop(root: Path, **kwargs: Any) -> Any:
    from sclc_lightning import SelfConsumingLoop

    settings: dict[str, Any] = {"synthetic_fraction": 1.0, "generations": 1, "mode": "replace", "seed": 0}
    return SelfConsumingLoop(**{**settings, "output_dir": root / "s", **kwargs})


def case_seeds_vary(root: Path) -> Outcome:
    from sclc_lightning.models import GaussianModel

    finals = set()
    for seed in range(8):
        pl.seed_everything(seed, verbose=False)
        model = GaussianModel(dim=1)
        loop = _loop(root / str(seed), generations=20, seed=None)
        _fit(
            root / str(seed),
            loop,
            model,
            DataLoader(torch.randn(10, 1, generator=torch.Generator().manual_seed(0)), batch_size=10),
        )
        finals.add(round(math.log(float(model.sigma)), 12))
    return ("ok" if len(finals) == 8 else "silent"), f"{len(finals)} distinct final log σ over 8 seeds"


def case_edited_schedule(root: Path) -> Outcome:
    from sclc_lightning.loop.run import LoopState, check_resume

    folder = root / "code"
    folder.mkdir(parents=True)
    sys.path.insert(0, str(folder))
    try:
        fingerprints = []
        for factor in (0.2, 0.1):
            (folder / "user_schedule.py").write_text(f"def ramp(g):\n    return {factor} * g\n")
            sys.modules.pop("user_schedule", None)
            importlib.invalidate_caches()
            fingerprints.append(_loop(root, synthetic_fraction="user_schedule:ramp", generations=3).fingerprint())
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("user_schedule", None)
    state = LoopState.from_dict({"format": 4, "fingerprint": fingerprints[0]})
    return _refused(lambda: check_resume(state, fingerprints[1]), "synthetic_fraction", "accept_edited_code")


def case_lambda_and_partial(root: Path) -> Outcome:
    from sclc_lightning._callables import code_identity

    one, two = code_identity(lambda g: 0.2 * g), code_identity(lambda g: 0.1 * g)
    part = code_identity(functools.partial(max, 3))
    good = one != two and "0x" not in part and "<lambda>#code:" in one
    return ("ok" if good else "silent"), f"{one} / {two}; {part}"


def _score_batch() -> Any:
    from sclc_lightning.items.codec import SyntheticBatch

    return SyntheticBatch(torch.arange(4.0)[:, None], torch.arange(4))


def case_score_shape(root: Path) -> Outcome:
    from sclc_lightning.correctors import Score

    score = Score(lambda data, conditions: data[:, 0].reshape(-1, 2), "reward")
    return _refused(lambda: score(_score_batch(), 1, None), "`reward`", "one value per point")


def _reference(root: Path, change: Callable[[dict[str, torch.Tensor]], None]) -> str:
    from safetensors.torch import save_file

    from sclc_lightning.models import GaussianModel

    weights = GaussianModel(dim=2).state_dict()
    change(weights)
    path = root / "reference.safetensors"
    root.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(path))
    return str(path)


def _neon_reference_case(root: Path, change: Callable[[dict[str, torch.Tensor]], None], *names: str) -> Outcome:
    from sclc_lightning.correctors import NeonCorrector

    path = _reference(root, change)
    loop = _loop(root, model_corrector=NeonCorrector(1.0, reference=path))
    return _refused(lambda: _fit(root, loop), path, *names)


def case_neon_negative_variance(root: Path) -> Outcome:
    return _neon_reference_case(
        root, lambda w: w.__setitem__("cov", torch.diag(torch.tensor([1.0, -1.0]))), "positive semi-definite"
    )


def case_neon_other_architecture(root: Path) -> Outcome:
    return _neon_reference_case(root, lambda w: w.__setitem__("mean", torch.zeros(3)), "mean has shape (3,)")


def case_neon_nan(root: Path) -> Outcome:
    return _neon_reference_case(
        root, lambda w: w.__setitem__("cov", torch.tensor([[1.0, 0.0], [0.0, math.nan]])), "non-finite"
    )


def case_charged_molecule(root: Path) -> Outcome:
    from sclc_lightning.datasets.molecules import embed_conformer

    return _refused(lambda: embed_conformer("C[NH3+]", seed=0), "C[NH3+]", "formal charges")


def _geom(root: Path, name: str, payload: bytes) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_bytes(payload)
    return path


def _ethanol_record(edit: Callable[[list[list[float]]], None] | None = None) -> bytes:
    import msgpack

    from sclc_lightning.datasets.molecules import embed_conformer

    molecule = embed_conformer("CCO", seed=1)
    xyz = torch.cat([molecule.atomic_numbers[:, None].double(), molecule.conformers[0].double()], dim=1).tolist()
    if edit is not None:
        edit(xyz)
    return msgpack.packb({"CCO": {"conformers": [{"xyz": xyz}]}})


def _read_all(path: Path) -> Any:
    from sclc_lightning.datasets.molecules import read_geom

    return list(read_geom(path))


def case_geom_truncated(root: Path) -> Outcome:
    record = _ethanol_record()
    path = _geom(root, "cut.msgpack", record + record[:-25])
    return _refused(lambda: _read_all(path), str(path), "truncated")


def case_geom_nan(root: Path) -> Outcome:
    path = _geom(root, "nan.msgpack", _ethanol_record(lambda xyz: xyz[2].__setitem__(1, math.nan)))
    return _refused(lambda: _read_all(path), str(path), "'CCO'", "non-finite")


def case_geom_huge(root: Path) -> Outcome:
    path = _geom(root, "huge.msgpack", _ethanol_record(lambda xyz: xyz[0].__setitem__(3, 1e300)))
    return _refused(lambda: _read_all(path), str(path), "'CCO'", "coordinate")


def case_geom_fraction(root: Path) -> Outcome:
    path = _geom(root, "frac.msgpack", _ethanol_record(lambda xyz: xyz[0].__setitem__(0, 6.4)))
    return _refused(lambda: _read_all(path), str(path), "'CCO'", "whole numbers")


def case_geom_charged(root: Path) -> Outcome:
    import msgpack

    path = _geom(root, "ion.msgpack", msgpack.packb({"C[NH3+]": {"conformers": [{"xyz": [[6, 0, 0, 0]] * 8}]}}))
    return _refused(lambda: _read_all(path), str(path), "C[NH3+]", "formal charges")


def case_geom_limit_0(root: Path) -> Outcome:
    from sclc_lightning.datasets.molecules import read_geom

    path = _geom(root, "one.msgpack", _ethanol_record())
    got = list(read_geom(path, limit=0))
    return ("ok" if got == [] else "silent"), f"read_geom(limit=0) returned {len(got)} molecules"


def _monitor_run(root: Path, callbacks: list[Any], **loop: Any) -> list[str]:
    from sclc_lightning.datasets.toy import GaussianDataModule
    from sclc_lightning.models import GaussianModel

    data = GaussianDataModule(n=200, dim=2, n_test=300, batch_size=200, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit(root, _loop(root, **{"generations": 2, **loop}), GaussianModel(dim=2), data, callbacks)
    return [str(w.message) for w in caught if "StabilityMonitor" in str(w.message)]


def case_monitor_typo(root: Path) -> Outcome:
    from sclc_lightning.callbacks import DetectorMetrics, StabilityMonitor

    said = _monitor_run(
        root, [StabilityMonitor(drift_metric="c2st_acu"), DetectorMetrics(num_samples=100, classifier="logistic")]
    )
    good = len(said) == 1 and "Did you mean 'c2st_auc'" in said[0]
    return ("ok" if good else "silent"), said[0][:140] if said else "no word"


def case_monitor_order(root: Path) -> Outcome:
    from sclc_lightning.callbacks import DetectorMetrics, StabilityMonitor

    detector = DetectorMetrics(num_samples=200, classifier="mlp", sample_kwargs={"temperature": 0.3})
    said = _monitor_run(root, [StabilityMonitor(drift_threshold=0.6), detector])
    good = any("has drifted" in s for s in said)
    return ("ok" if good else "silent"), said[0][:140] if said else "no word (monitor placed before the detector)"


def case_monitor_mle(root: Path) -> Outcome:
    from sclc_lightning.callbacks import StabilityMonitor
    from sclc_lightning.models import GaussianModel

    monitor = StabilityMonitor(drift_metric=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # float64: over 200 generations σ falls to about e^-22, below float32's precision
        data = DataLoader(torch.randn(10, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(3)), 10)
        model = GaussianModel(dim=1, estimator="mle").double()
        _fit(root, _loop(root, generations=200, seed=3), model, data, [monitor])
    said = [str(w.message) for w in caught if "StabilityMonitor" in str(w.message)]
    return ("ok" if not said else "silent"), said[0][:140] if said else "no false warning over 200 generations (MLE)"


def case_monitor_neon(root: Path) -> Outcome:
    from sclc_lightning.callbacks import StabilityMonitor

    neon = {"model_corrector": "neon", "model_corrector_kwargs": {"weight": 1.0, "num_samples": 200}}
    said = _monitor_run(root, [StabilityMonitor(drift_metric=None)], **neon)
    return ("ok" if not said else "silent"), said[0][:140] if said else "no exact-Gaussian view on a Neon run"


def case_detector_count(root: Path) -> Outcome:
    import logging

    from sclc_lightning.callbacks import DetectorMetrics

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("lightning.pytorch")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        _monitor_run(root, [DetectorMetrics(num_samples=100_000, classifier="logistic")], generations=0)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    said = [r for r in records if "evaluated on" in r]
    good = said and "evaluated on 300 samples" in said[0]
    return ("ok" if good else "silent"), said[0][:140] if said else "no line"


def case_verifier_rejects_all(root: Path) -> Outcome:
    from sclc_lightning.correctors import VerifierCorrector

    verify = VerifierCorrector(lambda data, conditions: torch.full((len(data),), -1.0), threshold=0.0)
    return _refused(lambda: _fit(root, _loop(root, corrector=verify)), "accepts none of", "real items")


def case_max_oversampling(root: Path) -> Outcome:
    from sclc_lightning.correctors import CurationCorrector

    curate = CurationCorrector(lambda data, conditions: data[:, 0], num_candidates=8)
    return _refused(lambda: _loop(root, corrector=curate, max_oversampling=5), "max_oversampling", "8")


def _conformer_items(edit: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    from sclc_lightning.datasets.molecules import ConformerDataModule

    data = ConformerDataModule(num_molecules=3, train_conformers=1, test_conformers=0, max_heavy_atoms=8)
    data.setup("fit")
    items = [data.item(m, 0) for m in range(3)]
    items[2] = {**items[2], "graph": edit(items[2]["graph"].clone())}
    return DataLoader(items, batch_size=3)  # type: ignore[arg-type]


def _forcefield_case(root: Path, edit: Callable[[torch.Tensor], torch.Tensor], *names: str) -> Outcome:
    from sclc_lightning.models import ConformerDiffusion

    loop = _loop(root, data_field="pos", condition_field="graph", corrector="forcefield")
    data = _conformer_items(edit)
    return _refused(lambda: _fit(root, loop, ConformerDiffusion(width=8, layers=1), data), *names)


def case_bond_code_7(root: Path) -> Outcome:
    def edit(graph: torch.Tensor) -> torch.Tensor:
        graph[0, 1] = graph[1, 0] = 7
        return graph

    return _forcefield_case(root, edit, "item 2", "bond codes [7]")


def case_monitor_alpha_0(root: Path) -> Outcome:
    from sclc_lightning.callbacks import StabilityMonitor

    return _refused(lambda: StabilityMonitor(alpha=0.0, epsilon=1.0, lipschitz=1.0), "`alpha`", "> 0")


def case_detector_folds_1(root: Path) -> Outcome:
    from sclc_lightning.callbacks import DetectorMetrics

    return _refused(lambda: DetectorMetrics(folds=1), "`folds`", ">= 2")


def case_detector_no_test_split(root: Path) -> Outcome:
    from sclc_lightning.callbacks import DetectorMetrics

    loop = _loop(root)
    return _refused(lambda: _fit(root, loop, callbacks=[DetectorMetrics(num_samples=100)]), "test_dataloader")


def case_command_typo(root: Path) -> Outcome:
    from sclc_lightning.correctors import Score

    return _refused(lambda: Score({"command": "x {input} {output}", "timout": 3}, "reward"), "'timout'", "'timeout'")


def case_schedule_typo(root: Path) -> Outcome:
    return _refused(lambda: _loop(root, synthetic_fraction={"name": "linear", "start": 0, "ned": 1}), "'ned'", "'end'")


def case_schedule_text(root: Path) -> Outcome:
    return _refused(
        lambda: _loop(root, synthetic_fraction={"name": "linear", "start": "0.1", "end": 1}), "`start`", "quotes"
    )


def case_schedule_two_arguments(root: Path) -> Outcome:
    return _refused(lambda: _loop(root, synthetic_fraction=lambda a, b: 0.1, generations=2), "f(generation)")


def case_schedule_numpy_scalar(root: Path) -> Outcome:
    import numpy as np

    try:
        loop = _loop(root, synthetic_fraction=lambda g: np.float32(0.5), generations=2)
    except Exception as err:
        return "bare", f"{type(err).__name__}: {err}"
    return ("ok" if loop.config.schedule == (0.5, 0.5) else "silent"), f"schedule {loop.config.schedule}"


def case_temperature_nan(root: Path) -> Outcome:
    return _refused(lambda: _loop(root, sample_kwargs={"temperature": math.nan}), "temperature", "finite")


def case_neon_lr_text(root: Path) -> Outcome:
    from sclc_lightning.correctors import NeonCorrector

    return _refused(lambda: NeonCorrector(1.0, lr="1e-3"), "`lr`", "quotes")  # type: ignore[arg-type]


def case_forcefield_steps_text(root: Path) -> Outcome:
    from sclc_lightning.correctors import ForceFieldCorrector

    return _refused(lambda: ForceFieldCorrector(steps="200"), "`steps`", "quotes")  # type: ignore[arg-type]


def case_score_timeout_operational(root: Path) -> Outcome:
    from sclc_lightning.correctors import Score

    short = Score({"command": "x {input} {output}", "timeout": 5}, "reward").description
    longer = Score({"command": "x {input} {output}", "timeout": 500}, "reward").description
    return ("ok" if short == longer else "silent"), f"recorded {short}"


def case_stderr_tail(root: Path) -> Outcome:
    from sclc_lightning.correctors import CommandCorrector

    path = root / "stderr.txt"
    root.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        line = b"x" * 99 + b"\n"
        for _ in range(20):
            handle.write(line * 100_000)  # 200 MB
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tail = CommandCorrector("x")._tail(path)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    path.unlink()
    good = grown < 50 and tail.count("\n") == 21
    return ("ok" if good else "silent"), f"quoted 20 lines of a 200 MB stderr; peak memory grew {grown:.0f} MB"


def case_own_exact_fit_checkpoints(root: Path) -> Outcome:
    from lightning.pytorch.callbacks import ModelCheckpoint

    class NeverSteps(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False
            self.mean = torch.nn.Parameter(torch.zeros(2), requires_grad=False)

        def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
            self.mean.copy_(batch.mean(0))

        def configure_optimizers(self) -> None:
            return None

        def sample(self, num_samples: int, *, generator: Any = None) -> torch.Tensor:
            return (self.mean + torch.randn(num_samples, 2, generator=generator)).detach()

    ckpt = ModelCheckpoint(dirpath=root / "ck", every_n_epochs=1, save_top_k=-1, filename="{epoch}")
    trainer = pl.Trainer(
        default_root_dir=root, callbacks=[_loop(root, generations=3), ckpt], max_epochs=-1, logger=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(NeverSteps(), train_dataloaders=DataLoader(torch.randn(40, 2), batch_size=40))
    written = len(list((root / "ck").glob("*.ckpt")))
    return ("ok" if written == 4 else "silent"), f"{written} checkpoints for generations 0..3"


def case_identity_label(root: Path) -> Outcome:
    from sclc_lightning.report import Run

    loop = {"synthetic_fraction": 0.6, "mode": "augment", "corrector": "identity", "corrector_kwargs": {"strength": 1}}
    label = Run(root, {"loop": loop}, []).group
    return ("ok" if "γ=0 " in label else "silent"), label


#: Every case: its name (as in docs/benchmarks.md), the finding's kind, and the function.
CASES: dict[str, tuple[str, Callable[[Path], Outcome]]] = {
    "eight runs differing only in seed_everything": ("silent", case_seeds_vary),
    "resume after editing the schedule function": ("silent", case_edited_schedule),
    "lambdas and partials identified by content": ("silent", case_lambda_and_partial),
    "a score of shape (m/2, 2)": ("silent", case_score_shape),
    "Neon reference with a negative variance": ("silent", case_neon_negative_variance),
    "a charged molecule as an item": ("silent", case_charged_molecule),
    "read_geom: stream cut by 25 bytes": ("silent", case_geom_truncated),
    "read_geom: NaN coordinates": ("silent", case_geom_nan),
    "read_geom: a 1e300 coordinate": ("silent", case_geom_huge),
    "read_geom: atomic number 6.4": ("silent", case_geom_fraction),
    "read_geom: a charged SMILES": ("silent", case_geom_charged),
    "read_geom(limit=0)": ("silent", case_geom_limit_0),
    "StabilityMonitor(drift_metric='c2st_acu')": ("silent", case_monitor_typo),
    "StabilityMonitor before DetectorMetrics": ("silent", case_monitor_order),
    "StabilityMonitor on an MLE Gaussian, T = 200": ("silent", case_monitor_mle),
    "StabilityMonitor on a Neon run": ("silent", case_monitor_neon),
    "DetectorMetrics(num_samples=100000), 300 held out": ("silent", case_detector_count),
    "a verifier that rejects everything": ("late", case_verifier_rejects_all),
    "max_oversampling below the draws implied": ("late", case_max_oversampling),
    "Neon reference of another architecture": ("late", case_neon_other_architecture),
    "Neon reference holding NaN": ("late", case_neon_nan),
    "a graph matrix with bond code 7 (third item)": ("late", case_bond_code_7),
    "StabilityMonitor(alpha=0)": ("late", case_monitor_alpha_0),
    "DetectorMetrics(folds=1)": ("late", case_detector_folds_1),
    "DetectorMetrics without a test_dataloader": ("late", case_detector_no_test_split),
    "{'command': ..., 'timout': 3}": ("loud", case_command_typo),
    "{'name': 'linear', 'ned': 1}": ("loud", case_schedule_typo),
    "{'name': 'linear', 'start': '0.1'}": ("loud", case_schedule_text),
    "a schedule function of two arguments": ("loud", case_schedule_two_arguments),
    "a schedule returning np.float32(0.5)": ("loud", case_schedule_numpy_scalar),
    "sample_kwargs temperature NaN": ("loud", case_temperature_nan),
    "Neon lr: '1e-3'": ("loud", case_neon_lr_text),
    "forcefield steps: '200'": ("loud", case_forcefield_steps_text),
    "a score program's timeout changed on resume": ("loud", case_score_timeout_operational),
    "a program writing 200 MB to stderr": ("loud", case_stderr_tail),
    "an own exactly-fitted model that never steps": ("loud", case_own_exact_fit_checkpoints),
    "identity arm given strength 1": ("loud", case_identity_label),
}


def trust_table(work: Path | None = None) -> list[dict[str, Any]]:
    """Run every case; one row each: name, kind, outcome, message."""
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
    work = Path(work or tempfile.mkdtemp(prefix="sclc-trust-"))
    rows = []
    for index, (name, (kind, case)) in enumerate(CASES.items()):
        try:
            outcome, message = case(work / f"case{index:02d}")
        except Exception as err:  # a case that breaks is reported, never hidden
            outcome, message = "error", f"{type(err).__name__}: {textwrap.shorten(str(err), 200)}"
        rows.append({"name": name, "kind": kind, "outcome": outcome, "message": message})
    return rows


if __name__ == "__main__":
    for row in trust_table():
        print(f"{row['name']:<50} {row['kind']:<7} {row['outcome']:<7} {row['message'][:120]}")
