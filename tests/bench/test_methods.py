"""Methods as named bundles of loop settings (sclc_lightning.bench.methods)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sclc_lightning.bench.methods import METHOD_SETTINGS, parse_method


def first_coordinate(data: Any, conditions: Any) -> Any:
    return data[:, 0]


def test_a_method_from_json_a_yaml_file_or_a_mapping_with_settings_per_task(tmp_path: Path) -> None:
    path = tmp_path / "curate.yaml"
    reward = f"{__name__}:first_coordinate"
    path.write_text(f"corrector: curate\nper_task:\n  gaussian:\n    corrector_kwargs: {{reward: '{reward}'}}\n")
    inline = parse_method("acc", '{"mode": "accumulate", "mode_kwargs": {"max_synthetic": 50}}')
    assert inline.settings_for("any") == {"mode": "accumulate", "mode_kwargs": {"max_synthetic": 50}}
    assert parse_method("km", {"corrector": "kmeans"}).settings == {"corrector": "kmeans"}
    curate = parse_method("cur", str(path))  # curate needs a reward: given for the task
    assert curate.settings_for("gaussian") == {"corrector": "curate", "corrector_kwargs": {"reward": reward}}
    with pytest.raises(ValueError, match=r"Method `cur`: .*reward"):  # without it, refused
        parse_method("cur", {"corrector": "curate"})


def test_what_a_method_cannot_set_or_misspells_is_refused_naming_it() -> None:
    assert "corrector" in METHOD_SETTINGS and "seed" not in METHOD_SETTINGS and "generations" not in METHOD_SETTINGS
    cases = [
        ("bad name", {}, "A method's name is 1 to 64 ASCII letters"),
        ("m", {"corector": "kmeans"}, r"'corector' is not a setting a method sets \(did you mean 'corrector'\?\)"),
        ("m", {"generations": 3}, "'generations' is not a setting a method sets"),
        ("m", {"corrector": "kmean"}, r"Method `m`: .*did you mean 'kmeans'"),
        ("m", '{"corrector": ', "its inline JSON does not parse"),
        ("m", "no/such/file.yaml", "neither inline JSON"),
        ("x" * 65, {}, "1 to 64 ASCII letters"),
        ("m", {"corrector": "identity", "needs": ["continous"]}, "did you mean 'continuous'"),
        ("m", {"per_task": {"gaussian": {"corrector_kwargs": {"num_cluster": 3}}}, "corrector": "kmeans"},
         r"Method `m` on `gaussian`: .*did you mean 'num_clusters'"),
    ]  # fmt: skip
    for name, spec, says in cases:
        with pytest.raises(ValueError, match=says):
            parse_method(name, spec)  # type: ignore[arg-type]


def test_a_yaml_file_that_does_not_parse_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("corrector: [unclosed\n")
    with pytest.raises(ValueError, match=r"Method 'm': .*bad.yaml is not valid YAML"):
        parse_method("m", str(path))


def test_a_class_by_import_path_is_recorded_with_its_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sclc_lightning._callables import recorded_settings

    module = tmp_path / "edited_corrector.py"
    module.write_text(
        "from tests.bench.harmful import Shift\n\nclass Mine(Shift):\n    def extra(self):\n        return 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    first = recorded_settings({"corrector": "edited_corrector:Mine"})["corrector"]
    assert first.startswith("edited_corrector:Mine#code:")
    import importlib
    import sys

    module.write_text(
        "from tests.bench.harmful import Shift\n\nclass Mine(Shift):\n    def extra(self):\n        return 2\n"
    )
    importlib.reload(sys.modules["edited_corrector"])
    assert recorded_settings({"corrector": "edited_corrector:Mine"})["corrector"] != first
