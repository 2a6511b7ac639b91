"""Settings cannot leave the resume fingerprint: every constructor argument of every built-in
corrector and mixing policy is declared deciding or operational; changing a deciding one, one at
a time, changes the fingerprint and a resume is refused; changing an operational one does not.
A checkpoint of another format is read (format 1) or refused by name."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import pytest
import torch

from sclc_lightning import Corrector, SelfConsumingLoop
from sclc_lightning._settings import constructor_arguments
from sclc_lightning.correctors import available_correctors, get_corrector_class
from sclc_lightning.loop.fingerprint import FORMATS, STATE_FORMAT, ResumeRefused, check_format, fingerprint_changes
from sclc_lightning.loop.run import LoopState, check_resume
from sclc_lightning.mixing import available_mixing_policies, get_mixing_policy_class


def score_a(data: torch.Tensor, conditions: Any) -> torch.Tensor:
    return -data.flatten(1).norm(dim=1)


def score_b(data: torch.Tensor, conditions: Any) -> torch.Tensor:
    return data.flatten(1).norm(dim=1)


def targets_a(num: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(num, 2, generator=generator)


def targets_b(num: int, generator: torch.Generator) -> torch.Tensor:
    return 2 * torch.randn(num, 2, generator=generator)


HERE = __name__
#: For the built-in correctors whose arguments are not all simple: the arguments each is built
#: with, and another value for the arguments :func:`_another` cannot derive (a required one, a
#: path, a command). A built-in of simple arguments (numbers, flags, choices) needs no entry: the
#: test reads the registry and derives another value of each from its default.
CORRECTORS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "command": (
        {"command": "python -c pass"},
        {
            "command": "python -c 'x = 1'",
            "strength": 1.0,
            "timeout": 10.0,
            "file_format": "npy",
            "cwd": "/tmp",
            "env": {"A": "1"},
            "keep_files": True,
            "stderr_lines": 5,
        },
    ),
    "filter": ({"score": f"{HERE}:score_a"}, {"score": f"{HERE}:score_b", "strength": 2.0}),
    "curate": (
        {"reward": f"{HERE}:score_a"},
        {"reward": f"{HERE}:score_b", "num_candidates": 8, "beta": 2.0, "strength": 1.0},
    ),
    "verify": (
        {"verifier": f"{HERE}:score_a", "threshold": 0.0},
        {
            "verifier": f"{HERE}:score_b",
            "rule": "probability",
            "threshold": 1.0,
            "fraction": 0.5,
            "oversample": 2.0,
            "strength": 1.0,
        },
    ),
    "kmeans": ({}, {"strength": 1.0, "num_clusters": 8, "per_class": False, "n_init": 5}),
    "optimal_transport": (
        {"target_sampler": f"{HERE}:targets_a"},
        {"strength": 2.0, "target_sampler": f"{HERE}:targets_b", "per_condition": False},
    ),
    "random_pairing": (
        {"target_sampler": f"{HERE}:targets_a"},
        {"strength": 2.0, "target_sampler": f"{HERE}:targets_b", "per_condition": False},
    ),
    "forcefield": (
        {"num_workers": 0},
        {"strength": 1.0, "steps": 50, "num_workers": 1, "chunk_size": 4, "start_method": "spawn"},
    ),
    "physics": (
        {"num_workers": 0},
        {
            "strength": 1.0,
            "num_workers": 1,
            "chunk_size": 4,
            "kp": 100.0,
            "kd": 10.0,
            "smooth": 0.0,
            "start_method": "spawn",
        },
    ),
}
#: Likewise for the built-in policies whose arguments cannot be derived (none for a policy of
#: simple arguments, or of none, as augment).
POLICIES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "augment": ({}, {"real_weight": 0.6}),
    "accumulate": ({}, {"max_synthetic": 3, "real_weight": 0.6}),
    "replace": ({"keep_real": 0.1}, {"keep_real": 0.2, "real_weight": 0.6}),
    "fresh": ({"real_per_generation": 3}, {"real_per_generation": 5, "real_weight": 0.6}),
}


def _another(cls: type, name: str) -> Any:
    """Another valid value of ``cls``'s argument ``name``, derived from its default and annotation:
    a flag flipped, a number changed, another choice."""
    import typing

    parameter = inspect.signature(cls).parameters[name]
    default, annotation = parameter.default, typing.get_type_hints(cls.__init__).get(name)
    choices = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else ()
    if isinstance(default, bool):
        return not default
    if choices:
        return next(choice for choice in choices if choice != default)
    if isinstance(default, int):
        return default + 1
    if isinstance(default, float):
        return 1.0 if default in (0.0, float("inf")) else 2 * default
    raise AssertionError(f"{cls.__name__}({name}=...): add another value of it to CORRECTORS")


def _table(name: str, policy: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arguments the built-in corrector (or ``policy``) ``name`` is built with, and another
    value of every argument."""
    cls = get_mixing_policy_class(name) if policy else get_corrector_class(name)
    base, given = (POLICIES if policy else CORRECTORS).get(name, ({}, {}))
    return base, {
        argument: given[argument] if argument in given else _another(cls, argument)
        for argument in constructor_arguments(cls)
    }


def _builtin(names: list[str], get: Any) -> list[str]:
    return [name for name in names if get(name).__module__.startswith("sclc_lightning.")]


def _fingerprint(**loop: Any) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return SelfConsumingLoop(**{"synthetic_fraction": 1.0, "generations": 2, "seed": 0, **loop}).fingerprint()


def _refused(old: dict[str, Any], new: dict[str, Any]) -> bool:
    state = LoopState("run", old, None, 0)
    try:
        check_resume(state, new)
    except ValueError:
        return True
    return False


def test_every_builtin_declares_every_argument() -> None:
    for cls in [get_corrector_class(n) for n in _builtin(available_correctors(), get_corrector_class)] + [
        get_mixing_policy_class(n) for n in _builtin(available_mixing_policies(), get_mixing_policy_class)
    ]:
        arguments = set(constructor_arguments(cls)) - {"strength"}
        assert cls.deciding is not None, f"{cls.__name__} does not declare its deciding settings"
        assert set(cls.deciding) | set(cls.operational) == arguments, cls.__name__
        assert not set(cls.deciding) & set(cls.operational), cls.__name__


def test_the_tables_hold_registered_builtins_only() -> None:
    assert set(CORRECTORS) <= set(_builtin(available_correctors(), get_corrector_class))
    assert set(POLICIES) <= set(_builtin(available_mixing_policies(), get_mixing_policy_class))


@pytest.mark.parametrize("name", _builtin(available_correctors(), get_corrector_class))
def test_each_corrector_argument_changes_the_fingerprint_iff_it_decides(name: str) -> None:
    cls = get_corrector_class(name)
    base, other = _table(name)
    for argument, value in other.items():
        # a verifier refuses a setting its rule does not use: change the rule with what it needs
        start, extra = RULE_CONTEXT.get((name, argument), (base, {}))
        before = _fingerprint(corrector=cls(**start))
        after = _fingerprint(
            corrector=cls(**{k: v for k, v in {**start, **extra, argument: value}.items() if v is not None})
        )
        changes = fingerprint_changes(before, after, STATE_FORMAT)
        if argument == "strength" or argument in (cls.deciding or ()):
            assert changes and changes[0].startswith("corrector."), (name, argument)
            assert _refused(before, after), (name, argument)
        else:
            assert argument in cls.operational
            assert changes == [] and not _refused(before, after), (name, argument, changes)


#: (corrector, argument) -> (the base to change it from, other settings the change needs)
RULE_CONTEXT: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {
    ("verify", "rule"): (CORRECTORS["verify"][0], {"threshold": None}),
    ("verify", "fraction"): ({"verifier": f"{HERE}:score_a", "rule": "top_fraction", "fraction": 0.25}, {}),
}


@pytest.mark.parametrize("name", _builtin(available_mixing_policies(), get_mixing_policy_class))
def test_each_policy_argument_changes_the_fingerprint_iff_it_decides(name: str) -> None:
    cls = get_mixing_policy_class(name)
    base, other = _table(name, policy=True)
    before = _fingerprint(mode=name, mode_kwargs=base)
    for argument, value in other.items():
        after = _fingerprint(mode=name, mode_kwargs={**base, argument: value})
        assert argument in (cls.deciding or ())
        (change,) = fingerprint_changes(before, after, STATE_FORMAT)
        assert change.startswith(f"mode_settings.{argument}: checkpoint ") and change.endswith(f"now {value!r}")
        assert _refused(before, after)


class _Hidden(Corrector):
    """A user's corrector that keeps its setting under another name."""

    def __init__(self, width: float, strength: float = 1.0) -> None:
        super().__init__(strength)
        self._width = width

    def correct(self, batch, *, generation, generator, reference):  # type: ignore[no-untyped-def]
        return batch.data * self._width


class _Declared(_Hidden):
    """The same, declaring the setting operational: it is then left out on purpose."""

    operational = ("width",)


class _Stored(Corrector):
    """A user's corrector that declares nothing and keeps its setting under its own name."""

    def __init__(self, width: float, strength: float = 1.0) -> None:
        super().__init__(strength)
        self.width = width

    def correct(self, batch, *, generation, generator, reference):  # type: ignore[no-untyped-def]
        return batch.data * self.width


def test_a_setting_kept_under_another_name_is_refused_when_the_loop_is_made() -> None:
    with pytest.raises(TypeError, match=r"_Hidden keeps its constructor argument 'width' under another name"):
        SelfConsumingLoop(synthetic_fraction=1.0, generations=2, corrector=_Hidden(2.0))
    assert _fingerprint(corrector=_Declared(2.0)) == _fingerprint(corrector=_Declared(3.0))


def test_an_undeclared_user_setting_stored_under_its_name_decides() -> None:
    assert _refused(_fingerprint(corrector=_Stored(2.0)), _fingerprint(corrector=_Stored(3.0)))


def test_declarations_are_checked() -> None:
    class Typo(_Stored):
        deciding = ("widht",)

    class Undeclared(_Stored):
        deciding = ()

    class Both(_Stored):
        deciding = ("width",)
        operational = ("width",)

    for cls, match in ((Typo, r"\['widht'\] that its constructor does not take"), (Undeclared, r"\['width'\]")):
        with pytest.raises(TypeError, match=match):
            cls(1.0).settings()
    with pytest.raises(TypeError, match="both deciding and operational"):
        Both(1.0).settings()


def test_checkpoint_formats_are_read_or_refused_by_name() -> None:
    assert STATE_FORMAT in FORMATS and check_format(1) == 1
    old = {"synthetic_fraction": 1.0, "mode": "accumulate", "max_synthetic": 3, "seed": 0, "corrector": None}
    now = _fingerprint(mode="accumulate", mode_kwargs={"max_synthetic": 3})
    assert fingerprint_changes(old, now, 1) == []  # format 1: mode settings were top-level keys
    for bad, says in ((STATE_FORMAT + 1, "A newer sclc-lightning wrote it"), (None, "not written by"), (True, "not")):
        with pytest.raises(
            ResumeRefused, match=f"state format {bad!r}; this version reads formats 1 .* and 4 .*{says}"
        ):
            LoopState.from_dict({"format": bad, "fingerprint": {}})


def test_none_where_none_is_not_accepted_is_a_named_value_error() -> None:
    accepted = []
    for name, parameter in inspect.signature(SelfConsumingLoop).parameters.items():
        arguments: dict[str, Any] = {"synthetic_fraction": 1.0, "generations": 2, name: None}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                SelfConsumingLoop(**arguments)
        except ValueError as err:
            assert f"`{name}`" in str(err), (name, err)
        else:
            accepted.append(name)
            assert parameter.default is None or "None" in str(parameter.annotation), name
    assert "sample_batch_size" not in accepted and "shard_rows" not in accepted and "mode" not in accepted


def test_a_setting_back_at_its_default_on_resume_is_a_change() -> None:
    """A checkpoint of a run with ``start_from="initial"`` (or a sampler's settings, a model
    corrector) resumed without them: the fingerprint leaves defaults out, so the comparison reads
    both sides' keys and names the default."""
    recorded = _fingerprint(
        start_from="initial",
        sample_kwargs={"temperature": 0.5},
        model_corrector="neon",
        model_corrector_kwargs={"weight": 1.0},
    )
    now = _fingerprint()
    changes = fingerprint_changes(recorded, now, STATE_FORMAT)
    assert "start_from: checkpoint 'initial' vs now 'previous'" in changes
    assert any(c.startswith("sample_kwargs") for c in changes) and any(c.startswith("model_corrector") for c in changes)
    assert _refused(recorded, now) and _refused(now, recorded)
