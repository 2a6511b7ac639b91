"""Every argument of every public class a user configures is checked where it is given: the
walker below takes each class's signature and feeds each argument what a hostile user would
(text for a number, NaN, a fraction for a count, text for a flag, a typo for a choice, a typo'd
key for a mapping) and asserts the constructor refuses it with a message naming the argument.
NumPy scalars are numbers: each numeric default given as a NumPy scalar is accepted.

The cases come from the signatures and their annotations, so a new argument is walked without
anyone writing its test; what cannot be checked at construction is listed below with the reason
(and is checked where it can be: at set-up, against the module or the data)."""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch

from sclc_lightning.correctors import available_correctors, get_corrector_class

# (import path, class name) -> the required arguments a valid instance needs
CLASSES: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {}


def _register(module: str, *names: str, required: Callable[[], dict[str, Any]] = dict) -> None:
    for name in names:
        CLASSES[(module, name)] = required


def _score(x: torch.Tensor) -> torch.Tensor:
    return x.sum(dim=1)


_register(
    "sclc_lightning.callbacks", "SelfConsumingLoop", required=lambda: {"synthetic_fraction": 0.5, "generations": 2}
)
_register("sclc_lightning.callbacks", "ImageMetrics", required=lambda: {"num_classes": 10})


def _remote() -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    from sclc_lightning.store.remote import RemoteRunDirectory

    return {"remote": RemoteRunDirectory(Path(tempfile.mkdtemp()).as_uri(), Path(tempfile.mkdtemp()) / "work")}


_register("sclc_lightning.callbacks", "RemoteSync", required=_remote)
_register(
    "sclc_lightning.callbacks",
    "ConformerMetrics",
    "DetectorMetrics",
    "DiversityMetrics",
    "GenerationCSV",
    "HeldOutScores",
    "MotionMetrics",
    "PointMetrics",
    "SampleFigures",
    "StabilityMonitor",
    "TextMetrics",
)
_register(
    "sclc_lightning.callbacks",
    "GenerationEvaluator",
    "FeatureDistanceEvaluator",
    required=lambda: {"num_samples": 10, "every": 1, "batch_size": 10, "seed": 0},
)
_register("sclc_lightning.correctors", "CommandCorrector", required=lambda: {"command": ["true"]})
_register("sclc_lightning.correctors", "CurationCorrector", required=lambda: {"reward": _score})
_register("sclc_lightning.correctors", "FilterCorrector", required=lambda: {"score": _score})
_register("sclc_lightning.correctors", "VerifierCorrector", required=lambda: {"verifier": _score, "threshold": 0.0})
_register("sclc_lightning.correctors", "NeonCorrector", required=lambda: {"weight": 0.5})
# every other registered built-in corrector, read from the registry: it takes no required argument
for _name in available_correctors():
    _class = get_corrector_class(_name)
    if (
        _class.__module__.startswith("sclc_lightning.")
        and ("sclc_lightning.correctors", _class.__name__) not in CLASSES
    ):
        _register("sclc_lightning.correctors", _class.__name__)
_register("sclc_lightning.mixing", "AccumulatePolicy", "AugmentPolicy", "ReplacePolicy")
_register("sclc_lightning.mixing", "FreshPolicy", required=lambda: {"real_per_generation": 10})
_register("sclc_lightning.models", "CausalLM", required=lambda: {"config": {"model_type": "gpt2", "n_layer": 1}})
_register(
    "sclc_lightning.models",
    "ConformerDiffusion",
    "GaussianMixtureModel",
    "GaussianModel",
    "ImageDDPM",
    "ImageEDM",
    "ImageVAE",
    "LaplaceModel",
    "LinearRegressionModel",
    "MotionDiffusion",
    "PointDDPM",
    "PointFlowMatching",
)
_register(
    "sclc_lightning.datasets.toy",
    "EightGaussiansDataModule",
    "GaussianDataModule",
    "GaussianMixtureDataModule",
    "LaplaceDataModule",
    "LinearRegressionDataModule",
    "PointsDataModule",
    "TwoMoonsDataModule",
)
_register("sclc_lightning.datasets.images", "CIFAR10DataModule", "DigitsDataModule", "MNIST5kDataModule")
_register("sclc_lightning.datasets.images", "ImageFolderDataModule", required=lambda: {"root": "images"})
_register("sclc_lightning.datasets.text", "GrammarTextDataModule")
_register("sclc_lightning.datasets.text", "TokenizedTextDataModule", required=lambda: {"tokenizer": "gpt2"})
_register("sclc_lightning.datasets.motion", "MotionDataModule")
_register("sclc_lightning.datasets.molecules", "ConformerDataModule")

# Text arguments that take any text (paths, commands, names of outside things): no typo to catch.
FREE_TEXT = {
    "path",
    "output_dir",
    "root",
    "cache_dir",
    "cwd",
    "command",
    "tokenizer",
    "dataset",
    "name",
    "text_field",
    "train_split",
    "test_split",
    "pretrained",
    "pretrained_unet",
    "inception_weights",
    "inception_sha256",
    "data_field",
    "condition_field",
    "sampler",
    "corrector",
    "model_corrector",
    "start_method",
    "drift_metric",  # a logged metric's name, or 'auto'; one that never appears is reported
    "tail",  # a name of the module's scores, checked against them at the first evaluation
}
# Mappings whose valid keys are known only at set-up, and where they are checked there.
KEYS_KNOWN_LATER = {
    "sample_kwargs": "the keys are the model sampler's own arguments: checked in the dry run",
    "fields": "the keys are the items' fields: checked against the real data at set-up",
    "env": "environment variables: any name is valid",
    "config": "a transformers model configuration: checked by transformers when the model is built",
    "data_files": "split names for the datasets library: checked when the data are loaded",
}


# Arguments whose annotation admits several kinds (a number or a schedule, a name or an object):
# the walker cannot derive their hostile values, so they are listed.  (class, argument, value,
# other arguments the case needs)
EXTRA_CASES: list[tuple[str, str, Any, dict[str, Any]]] = [
    ("SelfConsumingLoop", "synthetic_fraction", float("nan"), {}),
    ("SelfConsumingLoop", "synthetic_fraction", "0.5", {}),
    ("SelfConsumingLoop", "synthetic_fraction", [0.5, float("nan")], {}),
    ("SelfConsumingLoop", "synthetic_fraction", {"name": "linear", "strat": 0.0}, {}),
    ("SelfConsumingLoop", "mode", "augmnt", {}),
    ("SelfConsumingLoop", "corrector", "kmeens", {}),
    ("SelfConsumingLoop", "model_corrector", "neonn", {}),
    ("SelfConsumingLoop", "corrector_kwargs", {"num_clusterz": 3}, {"corrector": "kmeans"}),
    ("SelfConsumingLoop", "mode_kwargs", {"max_synthetc": 3}, {"mode": "accumulate"}),
    (
        "SelfConsumingLoop",
        "model_corrector_kwargs",
        {"weight": 0.5, "stepz": 3},
        {"model_corrector": "neon", "model_corrector_kwargs": {"weight": 0.5}},
    ),
    ("SelfConsumingLoop", "sampler", 3, {}),
    ("SelfConsumingLoop", "data_field", 2.5, {}),
    ("SelfConsumingLoop", "condition_field", float("nan"), {}),
    ("SelfConsumingLoop", "output_dir", 3, {}),
    ("CommandCorrector", "command", 3, {}),
    ("CommandCorrector", "env", {"KEY": 3}, {}),
    ("GaussianDataModule", "mean", "0.0", {}),
    ("GaussianDataModule", "cov", [[1.0, 0.0], [0.0, float("nan")]], {}),
    ("GaussianMixtureDataModule", "means", [[0.0, "1"], [1.0, 0.0]], {}),
    ("LinearRegressionDataModule", "weights", [float("nan")] * 8, {}),
    ("LinearRegressionModel", "reference_weights", ["1"] * 8, {}),
    # from a hostile try of the first version of this walk
    ("SelfConsumingLoop", "mode_kwargs", "max_synthetic=5", {"mode": "accumulate"}),
    ("SelfConsumingLoop", "corrector_kwargs", "strength=1", {"corrector": "kmeans"}),
    ("SelfConsumingLoop", "fields", ["data"], {}),
    ("SelfConsumingLoop", "fields", 0, {}),
    ("SelfConsumingLoop", "output_dir", "", {}),
    ("SampleFigures", "generations", 3, {}),
    ("SampleFigures", "generations", [1, "2"], {}),
    ("SampleFigures", "generations", [1.5], {}),
    ("ImageDDPM", "block_out_channels", (32, "64"), {}),
    ("ImageDDPM", "block_out_channels", (32, float("nan")), {}),
    ("ImageDDPM", "block_out_channels", (), {}),
    ("ImageEDM", "block_out_channels", (16, 32), {}),
    ("ImageEDM", "block_out_channels", 64, {}),
    ("GaussianDataModule", "cov", [[1.0, 0.5], [0.0, 1.0]], {}),
    ("GaussianMixtureDataModule", "means", [], {}),
    ("GaussianMixtureDataModule", "means", 0.0, {}),
    ("LinearRegressionDataModule", "weights", 1.0, {}),
    ("LinearRegressionModel", "reference_weights", 1.0, {}),
    ("FilterCorrector", "score", "nope", {}),
    ("DetectorMetrics", "sample_kwargs", {"temperature": float("nan")}, {}),
    ("VerifierCorrector", "fraction", 0.5, {}),
    ("CommandCorrector", "command", ["true", 3], {}),
]


def _public_classes() -> list[tuple[str, type]]:
    found = []
    for (module, name), _ in CLASSES.items():
        found.append((f"{name}", getattr(importlib.import_module(module), name)))
    return found


def _cases(cls: type) -> Iterator[tuple[str, str, Any]]:
    """(argument, what, value) for each hostile value of each argument."""
    signature = inspect.signature(cls)
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        name, default = parameter.name, parameter.default
        annotation = str(parameter.annotation)
        words = set(re.findall(r"\w+", annotation))
        numeric = bool(words & {"int", "float"}) and words <= {"int", "float", "None"}
        if numeric:
            text = str(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else "1"
            yield name, "text", text
            yield name, "nan", float("nan")
            if "float" not in words:
                yield name, "fraction", 2.5
        elif words == {"bool"} or isinstance(default, bool):
            yield name, "text flag", "false"
        elif "Literal" in words or (words <= {"str", "None"} and "str" in words):
            if isinstance(default, str) and name not in FREE_TEXT:
                yield name, "typo", default[:-1] + "x"
            yield name, "number", 3
        if words & {"Mapping", "dict"} and name not in KEYS_KNOWN_LATER:
            yield name, "typo'd key", {"no_such_setting": 1}


CASES = [
    pytest.param(cls, argument, value, {}, id=f"{label}-{argument}-{what}")
    for label, cls in _public_classes()
    for argument, what, value in _cases(cls)
] + [
    pytest.param(dict(_public_classes())[label], argument, value, context, id=f"{label}-{argument}-{value!r}")
    for label, argument, value, context in EXTRA_CASES
]


def _required(cls: type) -> dict[str, Any]:
    for (module, name), required in CLASSES.items():
        if getattr(importlib.import_module(module), name) is cls:
            return required()
    raise KeyError(cls)


@pytest.mark.parametrize("cls", [cls for _, cls in _public_classes()], ids=[label for label, _ in _public_classes()])
def test_each_class_is_made_from_the_walkers_arguments(cls: type) -> None:
    """The baseline of the walk: with the arguments above (and every case's context), each
    class is made, so a refusal below comes from the one hostile value."""
    cls(**_required(cls))
    for label, _argument, _value, context in EXTRA_CASES:
        if dict(_public_classes())[label] is cls and context:
            cls(**{**_required(cls), **context})


@pytest.mark.parametrize(("cls", "argument", "value", "context"), CASES)
def test_each_argument_refuses_a_hostile_value_where_it_is_given(
    cls: type, argument: str, value: Any, context: dict[str, Any]
) -> None:
    """Refused in the constructor, in a message naming the argument (and, for a typo'd key, the key)."""
    kwargs = {**_required(cls), **context, argument: value}
    with pytest.raises((ValueError, TypeError)) as refused:
        cls(**kwargs)
    message = str(refused.value)
    assert argument in message, f"{cls.__name__}({argument}={value!r}): {message}"
    for key in value if isinstance(value, dict) else ():
        if key not in ("name", "weight", "KEY", "temperature"):  # the valid keys of the cases above
            assert key in message, f"{cls.__name__}({argument}={value!r}) does not name the key {key!r}: {message}"


def _numpy_cases() -> Iterator[Any]:
    for label, cls in _public_classes():
        for parameter in inspect.signature(cls).parameters.values():
            default = parameter.default
            if isinstance(default, (int, float)) and not isinstance(default, bool) and math.isfinite(default):
                scalar = np.int64(default) if isinstance(default, int) else np.float32(default)
                yield pytest.param(cls, parameter.name, scalar, id=f"{label}-{parameter.name}")


@pytest.mark.parametrize(("cls", "argument", "value"), list(_numpy_cases()))
def test_numpy_scalars_are_numbers(cls: type, argument: str, value: Any) -> None:
    cls(**{**_required(cls), argument: value})


def test_numpy_arguments_train_checkpoint_and_load_with_weights_only(tmp_path: Any) -> None:
    """NumPy scalars given to the loop, its corrector and the model end up as plain numbers in
    what is recorded: the checkpoint loads with ``weights_only=True`` (a NumPy scalar in it is
    refused there) and the model rebuilt from it has Python hyperparameters."""
    from helpers import fit, gaussian_points, loader

    from sclc_lightning import SelfConsumingLoop
    from sclc_lightning.models import PointFlowMatching

    model = PointFlowMatching(hidden=np.int64(16), layers=np.int64(1), sampling_steps=np.int64(2), lr=np.float32(1e-3))
    loop = SelfConsumingLoop(
        synthetic_fraction=np.float32(0.5),
        generations=np.int64(1),
        images_per_generation=np.int64(20),
        corrector="random_pairing",
        corrector_kwargs={"strength": np.float32(1.0)},
        sample_batch_size=np.int64(64),
        max_oversampling=np.float64(10.0),
        output_dir=str(tmp_path / "run"),
    )
    trainer = fit(tmp_path, model, loader(gaussian_points(40)), loop)
    assert trainer.current_epoch == 2
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["hyper_parameters"]["hidden"] == 16 and type(checkpoint["hyper_parameters"]["hidden"]) is int
    rebuilt = PointFlowMatching.load_from_checkpoint(path)
    assert type(rebuilt.hparams.lr) is float


def test_a_users_numpy_learning_rate_still_gives_a_checkpoint_that_loads(tmp_path: Any) -> None:
    """A user's own module whose optimizer got a NumPy learning rate (and its scheduler a NumPy
    gamma): the loop makes the numbers in the checkpoint plain, so it loads with weights_only."""
    from helpers import GaussianModel, fit, gaussian_points, loader

    from sclc_lightning import SelfConsumingLoop

    model = GaussianModel(lr=np.float32(0.05))
    loop = SelfConsumingLoop(synthetic_fraction=0.5, generations=1, output_dir=str(tmp_path / "run"))
    trainer = fit(tmp_path, model, loader(gaussian_points(40)), loop)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert type(checkpoint["optimizer_states"][0]["param_groups"][0]["lr"]) is float


def _numpy_defaults(cls: type) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for parameter in inspect.signature(cls).parameters.values():
        default = parameter.default
        if isinstance(default, (int, float)) and not isinstance(default, bool) and math.isfinite(default):
            found[parameter.name] = np.int64(default) if isinstance(default, int) else np.float64(default)
    return found


def _numpy_inside(value: Any) -> bool:
    if isinstance(value, np.generic):
        return True
    if isinstance(value, (list, tuple)):
        return any(_numpy_inside(v) for v in value)
    if isinstance(value, dict):
        return any(_numpy_inside(v) for v in value.values())
    return False


@pytest.mark.parametrize("cls", [cls for _, cls in _public_classes()], ids=[label for label, _ in _public_classes()])
def test_numpy_numbers_are_kept_as_python_numbers(cls: type) -> None:
    """Every numeric argument given as a NumPy scalar at once: the object keeps Python numbers
    (in its attributes and its recorded hyperparameters), which torch and checkpoints take."""
    made = cls(**{**_required(cls), **_numpy_defaults(cls)})
    kept = {name: value for name, value in vars(made).items() if _numpy_inside(value)}
    assert not kept, f"{cls.__name__} keeps NumPy scalars: {kept}"
    assert not _numpy_inside(dict(getattr(made, "hparams", {})))


def test_a_datamodule_given_numpy_numbers_loads_batches() -> None:
    from sclc_lightning.datasets.toy import GaussianDataModule

    data = GaussianDataModule(**_numpy_defaults(GaussianDataModule), seed=np.int64(3))
    data.setup("fit")
    assert next(iter(data.train_dataloader())).shape == (50, 2)


def test_the_walk_covers_every_class_a_user_configures() -> None:
    """A class added to the package's public lists (callbacks, registered correctors and mixing
    policies, models, bundled DataModules) is walked too: it must be listed in CLASSES above."""
    import lightning.pytorch as pl

    import sclc_lightning.callbacks
    import sclc_lightning.models
    from sclc_lightning.correctors import available_correctors, get_corrector_class
    from sclc_lightning.mixing import available_mixing_policies, get_mixing_policy_class

    public: set[type] = set()
    public |= {getattr(sclc_lightning.callbacks, n) for n in sclc_lightning.callbacks.__all__}
    public |= {get_corrector_class(n) for n in available_correctors()}
    public |= {get_mixing_policy_class(n) for n in available_mixing_policies()}
    public |= {getattr(sclc_lightning.models, n) for n in sclc_lightning.models.__all__}
    # the package's own (other tests register classes of their own in the same registries)
    public = {c for c in public if inspect.isclass(c) and c.__module__.startswith("sclc_lightning.")}
    for module in ("toy", "images", "text", "motion", "molecules"):
        found = importlib.import_module(f"sclc_lightning.datasets.{module}")
        public |= {
            c
            for c in vars(found).values()
            if inspect.isclass(c) and issubclass(c, pl.LightningDataModule) and c.__module__ == found.__name__
        }
    # no argument of its own: the augment policy, the exact-fit base class, a corrector's base
    no_arguments = {
        c for c in public if not [p for p in inspect.signature(c).parameters if p not in ("args", "kwargs")]
    }
    walked = {cls for _, cls in _public_classes()}
    missing = sorted(c.__qualname__ for c in public - walked - no_arguments if not c.__name__.startswith("_"))
    assert not missing, f"not in the walk (add them to CLASSES): {missing}"
