"""A recorded callable is identified by what it does (sclc_lightning/_callables.py): an edited
function gets another identity, the same code the same one in every process; lambdas, partials,
closures, defaults and module constants are covered; built-ins keep their name."""

from __future__ import annotations

import functools
import importlib
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sclc_lightning._callables import CODE_MARK, code_identity, describe_callable, strip_code_identities

SCALE = 0.2


def scaled(g: int) -> float:
    return SCALE * g


def _module(tmp_path: Path, name: str, body: str) -> Any:
    """Write ``name.py`` with ``body`` into ``tmp_path`` and import it afresh."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    sys.path.insert(0, str(tmp_path))
    try:
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def test_an_edited_function_gets_another_identity_and_the_same_code_the_same(tmp_path: Path) -> None:
    first = _module(tmp_path, "sched_a", "def schedule(g):\n    return 0.2 * g\n").schedule
    again = _module(tmp_path, "sched_a", "def schedule(g):\n    return 0.2 * g\n").schedule
    edited = _module(tmp_path, "sched_a", "def schedule(g):\n    return 0.1 * g\n").schedule
    assert first is not again
    assert code_identity(first) == code_identity(again)
    assert code_identity(first) != code_identity(edited)
    assert code_identity(first).startswith("sched_a:schedule" + CODE_MARK)


def test_a_file_edited_after_the_import_does_not_lend_its_text_to_the_old_code(tmp_path: Path) -> None:
    old = _module(tmp_path, "stale", "def f(g):\n    return 0.2 * g\n").f
    (tmp_path / "stale.py").write_text("def f(g):\n    return 0.1 * g\n")
    import linecache

    linecache.clearcache()  # what a later traceback or inspect call in the process would do
    new = _module(tmp_path, "stale", "def f(g):\n    return 0.1 * g\n").f
    assert code_identity(old) != code_identity(new)


def test_a_flipped_sign_changes_the_identity(tmp_path: Path) -> None:
    reward = _module(tmp_path, "rew", "def reward(x, c):\n    return x.sum(1)\n").reward
    flipped = _module(tmp_path, "rew", "def reward(x, c):\n    return -x.sum(1)\n").reward
    assert code_identity(reward) != code_identity(flipped)


def test_lambdas_are_identified_by_their_own_text() -> None:
    a = lambda g: 0.2 * g  # noqa: E731
    b = lambda g: 0.1 * g  # noqa: E731
    same = lambda g: 0.2 * g  # noqa: E731
    assert code_identity(a) != code_identity(b)
    assert code_identity(a) == code_identity(same)  # other lines, same text
    # other arguments on the lambda's line are not part of it
    first = {"schedule": lambda g: 0.5 * g, "generations": 3}
    second = {"schedule": lambda g: 0.5 * g, "generations": 30}
    assert code_identity(first["schedule"]) == code_identity(second["schedule"])
    assert "<lambda>" in code_identity(a)


def test_closures_defaults_and_module_constants_count() -> None:
    def make(k: float) -> Any:
        return lambda g: k * g

    assert code_identity(make(0.2)) != code_identity(make(0.1))
    assert code_identity(make(0.2)) == code_identity(make(0.2))

    def with_default(g: int, k: float = 0.2) -> float:
        return k * g

    before = code_identity(with_default)
    with_default.__defaults__ = (0.1,)
    assert code_identity(with_default) != before

    global SCALE
    before = code_identity(scaled)
    SCALE = 0.1
    try:
        assert code_identity(scaled) != before
    finally:
        SCALE = 0.2
    assert code_identity(scaled) == before


def test_partials_are_identified_by_function_and_arguments_without_addresses() -> None:
    one, other = functools.partial(scaled), functools.partial(max, 3)
    assert "0x" not in code_identity(one) and code_identity(one).startswith(f"{__name__}:scaled{CODE_MARK}")
    assert code_identity(functools.partial(max, 3)) == code_identity(other)
    assert code_identity(functools.partial(max, 4)) != code_identity(other)


def test_builtins_keep_their_qualified_name() -> None:
    assert code_identity(len) == "builtins:len"
    assert CODE_MARK not in code_identity(np.exp)


def test_an_import_path_records_the_code_it_names(tmp_path: Path) -> None:
    described = describe_callable(f"{__name__}:scaled")
    assert described == f"{__name__}:scaled" + code_identity(scaled).partition("scaled")[2]
    assert strip_code_identities({"a": [described]}) == {"a": [f"{__name__}:scaled"]}


_PROBE = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("probe_callables", sys.argv[1])
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
spec = importlib.util.spec_from_file_location("user_code", sys.argv[2])
user = importlib.util.module_from_spec(spec); spec.loader.exec_module(user)
print(module.code_identity(user.reward), module.code_identity(user.lam), module.code_identity(user.part))
"""


def test_identities_do_not_depend_on_the_process(tmp_path: Path) -> None:
    user = tmp_path / "user_code.py"
    user.write_text(
        "import functools\nWORDS = ('a', 'b')\n"
        "def reward(x, c, k={'x': 1, 'y': 2}):\n    return x in {'a', 'b', 'c'} and WORDS\n"
        "lam = lambda g: frozenset({'p', 'q'})\n"
        "part = functools.partial(reward, k={'z': 3})\n"
    )
    source = Path(__file__).parents[1] / "sclc_lightning" / "_callables.py"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", _PROBE, str(source), str(user)],
            env={"PYTHONHASHSEED": str(hash_seed), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in (1, 2, 3)
    }
    assert len(outputs) == 1, outputs
    assert "0x" not in outputs.pop()


@pytest.mark.parametrize("value", [scaled, lambda g: g, functools.partial(scaled)])
def test_the_digest_is_sixteen_hex_digits(value: Any) -> None:
    name, _, digest = code_identity(value).partition(CODE_MARK)
    assert len(digest) == 16 and int(digest, 16) >= 0 and name


class _Ramp:
    def __init__(self, value: float) -> None:
        self.value = value

    def at(self, generation: int) -> float:
        return self.value


def test_a_bound_method_counts_its_objects_state() -> None:
    # found by a hostile try: C(0.5).meth and C(3.0).meth resumed as the same schedule
    assert code_identity(_Ramp(0.5).at) != code_identity(_Ramp(3.0).at)
    assert code_identity(_Ramp(0.5).at) == code_identity(_Ramp(0.5).at)
    assert "0x" not in code_identity(_Ramp(0.5).at)


def test_edits_behind_a_cache_a_module_table_or_a_modules_forward_are_seen(tmp_path: Any) -> None:
    """From a hostile try: a ``functools.cache`` schedule, a schedule reading a module-level list
    or dict, and a torch module's ``forward`` used as a verifier were identified without what
    decides their values."""
    import importlib
    import sys

    def identity_of(source: str, name: str) -> str:
        (tmp_path / "edited_mod.py").write_text(source)
        sys.modules.pop("edited_mod", None)
        sys.path.insert(0, str(tmp_path))
        try:
            module = importlib.import_module("edited_mod")
        finally:
            sys.path.remove(str(tmp_path))
        return code_identity(getattr(module, name)() if name == "Verifier" else getattr(module, name))

    cached = "import functools\n@functools.cache\ndef ramp(g):\n    return {}\n"
    assert identity_of(cached.format(0.5), "ramp") != identity_of(cached.format(1.0), "ramp")
    table = "LAMBDAS = [0.5, {}]\nCFG = {{'lam': {}}}\ndef ramp(g):\n    return LAMBDAS[g] * CFG['lam']\n"
    assert identity_of(table.format(0.5, 1), "ramp") != identity_of(table.format(1.0, 1), "ramp")
    assert identity_of(table.format(0.5, 1), "ramp") != identity_of(table.format(0.5, 2), "ramp")
    module = "import torch\nclass Verifier(torch.nn.Module):\n    def forward(self, x):\n        return x[:, {}]\n"
    assert identity_of(module.format(0), "Verifier") != identity_of(module.format(1), "Verifier")
    assert identity_of(module.format(0), "Verifier") == identity_of(module.format(0), "Verifier")
