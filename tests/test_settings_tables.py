"""Each built-in corrector's, model corrector's, mixing policy's and callback's settings are
declared once, in its class (signature, ``deciding``/``operational``, ``ranges``, docstring
``Args:``): the docs' tables are generated from that declaration, every argument has a line of
documentation (and, but for a callback's, a role), and the constructor enforces each declared
range. The registries and ``sclc_lightning.callbacks.__all__`` are read, so a new built-in or
callback is covered without editing this file (a required argument needs its entry in
``REQUIRED``, which the test names when it is missing)."""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from sclc_lightning._checks import Range, declared_ranges
from sclc_lightning._settings import _args_section, constructor_arguments, setting_rows
from sclc_lightning._settings_tables import KINDS, Kind, builtin_classes, section

DOCS = Path(__file__).parents[1] / "docs"


def _score(data: torch.Tensor, conditions: Any) -> torch.Tensor:
    return data.flatten(1).sum(dim=1)


#: The required arguments a valid instance of a built-in needs, by class name.
REQUIRED: dict[str, dict[str, Any]] = {
    "CommandCorrector": {"command": ["true"]},
    "CurationCorrector": {"reward": _score},
    "FilterCorrector": {"score": _score},
    "VerifierCorrector": {"verifier": _score, "threshold": 0.0},
    "NeonCorrector": {"weight": 0.5},
    "FreshPolicy": {"real_per_generation": 10},
    "GenerationEvaluator": {"num_samples": 10, "every": 1, "batch_size": 10, "seed": None},
    "FeatureDistanceEvaluator": {"num_samples": 10, "every": 1, "batch_size": 10, "seed": None},
    "ImageMetrics": {"num_classes": 10},
}
_CONSTANTS = {"alpha": 1.0, "epsilon": 0.1, "lipschitz": 1.0}  # Bertrand et al.'s: all three or none
#: Other arguments a value of ``(class, argument)`` is used with (``fraction`` is for one rule).
WITH: dict[tuple[str, str], dict[str, Any]] = {
    ("VerifierCorrector", "fraction"): {"rule": "top_fraction", "threshold": None},
    ("ReplacePolicy", "real_weight"): {"keep_real": 0.1},  # it weighs the real items replace keeps
    **{("StabilityMonitor", name): {k: v for k, v in _CONSTANTS.items() if k != name} for name in _CONSTANTS},
}
#: A rule between arguments that refuses every value of an argument's range near its bound, by
#: ``(class, argument)``: such a value may be refused, only with this message.
JOINT: dict[tuple[str, str], str] = {
    ("DetectorMetrics", "num_samples"): r"`num_samples` must be at least 2 \* `folds`",
}

_KINDS = [make() for make in KINDS]
BUILTINS = [(kind, name, cls) for kind in _KINDS for name, cls in builtin_classes(kind)]
IDS = [f"{kind.title}:{name}" for kind, name, _ in BUILTINS]


@pytest.mark.parametrize("kind", _KINDS, ids=[k.title for k in _KINDS])
def test_each_page_holds_the_tables_generated_from_the_declarations(kind: Kind) -> None:
    page = (DOCS / kind.page).read_text(encoding="utf-8")
    assert kind.start + section(kind) + kind.end in page, (
        f"docs/{kind.page}'s {kind.title} settings differ from the classes: run python scripts/settings_table.py"
    )


def test_every_registry_has_built_ins() -> None:
    assert {kind.title for kind, _, _ in BUILTINS} == {"corrector", "model corrector", "mixing policy", "callback"}
    assert {name for kind, name, _ in BUILTINS if kind.title == "corrector"} >= {"kmeans", "verify", "physics"}


def test_every_public_callback_but_the_loop_has_its_table() -> None:
    import sclc_lightning.callbacks

    tabled = {name for kind, name, _ in BUILTINS if kind.title == "callback"}
    assert tabled == set(sclc_lightning.callbacks.__all__) - {"SelfConsumingLoop"}  # the loop's: docs/loop.md


@pytest.mark.parametrize(("kind", "name", "cls"), BUILTINS, ids=IDS)
def test_every_argument_has_a_role_and_a_line_of_documentation(kind: Kind, name: str, cls: type) -> None:
    rows = setting_rows(cls, kind.fixed_roles, roles=kind.roles)
    assert [row.name for row in rows] == constructor_arguments(cls)
    for row in rows:
        assert row.role in (("deciding", "operational", *kind.fixed_roles.values()) if kind.roles else (None,)), (
            f"{cls.__name__}.{row.name}: declare it in `deciding` or `operational`"
        )
        assert row.doc.strip(), f"{cls.__name__}.{row.name}: document it in the class docstring's Args:"
    documented = set(_args_section(vars(cls).get("__doc__")))
    assert documented <= set(constructor_arguments(cls)), f"{cls.__name__} documents arguments it does not take"
    if kind.roles:
        declared = set(cls.deciding or ()) | set(cls.operational)  # type: ignore[attr-defined]
        assert declared <= set(constructor_arguments(cls)), f"{cls.__name__} declares arguments it does not take"


def _outside(bounds: Range, integer: bool) -> list[float]:
    step = 1 if integer else 0.5
    values: list[float] = []
    if bounds.minimum is not None:
        values.append(bounds.minimum - step)
    if bounds.above is not None:
        values.append(bounds.above)
    if bounds.maximum is not None:
        values.append(bounds.maximum + step)
    return values


def _inside(bounds: Range, integer: bool) -> list[float]:
    step = 1 if integer else 0.5
    values: list[float] = [math.inf] if bounds.infinite else []
    if bounds.minimum is not None:
        values.append(bounds.minimum)
    if bounds.above is not None:
        values.append(bounds.above + step if bounds.maximum is None else (bounds.above + bounds.maximum) / 2)
    if bounds.maximum is not None:
        values.append(bounds.maximum)
    return values


def _build(cls: type, **given: Any) -> None:
    arguments = {**REQUIRED.get(cls.__name__, {}), **given}
    missing = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.default is inspect.Parameter.empty and p.name not in arguments
    ]
    assert not missing, f"add {cls.__name__}'s required arguments {missing} to REQUIRED"
    try:
        cls(**arguments)
    except ImportError:  # an optional extra (rdkit, mujoco): the checks ran before it was asked for
        pass


RANGES = [(cls, argument) for _, _, cls in BUILTINS for argument in declared_ranges(cls)]


@pytest.mark.parametrize(("cls", "argument"), RANGES, ids=[f"{c.__name__}.{a}" for c, a in RANGES])
def test_the_constructor_enforces_each_declared_range(cls: type, argument: str) -> None:
    bounds = declared_ranges(cls)[argument]
    annotation = str(inspect.signature(cls).parameters[argument].annotation)
    integer = "int" in annotation and "float" not in annotation
    with_ = WITH.get((cls.__name__, argument), {})
    for value in _outside(bounds, integer):
        with pytest.raises(ValueError, match=f"`{argument}` must be"):
            _build(cls, **with_, **{argument: int(value) if integer else value})
    joint = JOINT.get((cls.__name__, argument))
    for value in _inside(bounds, integer):
        try:
            _build(cls, **with_, **{argument: int(value) if integer and math.isfinite(value) else value})
        except ValueError as err:
            if joint is None or not re.match(joint, str(err)):
                raise
