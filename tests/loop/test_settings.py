"""Every loop setting is declared once (sclc_lightning.loop.settings): the signature, the
docstring, the docs table and the fingerprint agree with the declaration."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import torch

from sclc_lightning import SelfConsumingLoop
from sclc_lightning.items.codec import ItemCodec
from sclc_lightning.loop.config import LoopConfig
from sclc_lightning.loop.fingerprint import build
from sclc_lightning.loop.settings import LOOP_SETTINGS, REQUIRED, TABLE_END, TABLE_START, check_settings, markdown_table

DOCS = Path(__file__).parents[2] / "docs" / "loop.md"


def test_the_signature_is_the_declaration() -> None:
    parameters = list(inspect.signature(SelfConsumingLoop).parameters.values())
    assert [p.name for p in parameters] == [s.name for s in LOOP_SETTINGS]
    for parameter, setting in zip(parameters, LOOP_SETTINGS):
        expected = inspect.Parameter.empty if setting.default is REQUIRED else setting.default
        assert parameter.default == expected, setting.name


def test_the_docstring_and_the_docs_table_come_from_the_declaration() -> None:
    doc = SelfConsumingLoop.__doc__ or ""
    for setting in LOOP_SETTINGS:
        assert f"\n        {setting.name}: " in doc, setting.name
    assert " ".join(doc.split()).count(" ".join(LOOP_SETTINGS[0].doc.split())) == 1
    page = DOCS.read_text()
    assert TABLE_START + markdown_table() + TABLE_END in page, (
        "docs/loop.md's table differs from the declaration: run python scripts/settings_table.py"
    )


#: Another value of each setting (valid with the others at their defaults).
OTHER: dict[str, Any] = {
    "synthetic_fraction": 0.25,
    "generations": 3,
    "images_per_generation": 64,
    "passes_per_generation": 2.0,
    "initial_images": 8,
    "mode": "accumulate",
    "mode_kwargs": {"max_synthetic": 7},
    "corrector": "kmeans",
    "corrector_kwargs": {"strength": 2.0},
    "output_dir": "elsewhere",
    "seed": 11,
    "sample_batch_size": 3,
    "data_field": 1,
    "condition_field": 2,
    "shard_rows": 5,
    "start_from": "initial",
    "fields": {1: "data"},
    "sampler": "generate",
    "dry_run": False,
    "accept_other_real_data": True,
    "accept_edited_code": True,
    "sample_kwargs": {"temperature": 0.5},
    "max_oversampling": 7.0,
    "model_corrector": "neon",
    "model_corrector_kwargs": {"weight": 0.5},
}
#: Settings whose other value needs others: (base, other) settings.
PAIRS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "mode_kwargs": ({"mode": "accumulate"}, {"mode": "accumulate", "mode_kwargs": {"max_synthetic": 7}}),
    "corrector_kwargs": ({"corrector": "kmeans"}, {"corrector": "kmeans", "corrector_kwargs": {"strength": 2.0}}),
    "model_corrector": ({}, {"model_corrector": "neon", "model_corrector_kwargs": {"weight": 1.0}}),
    "model_corrector_kwargs": (
        {"model_corrector": "neon", "model_corrector_kwargs": {"weight": 1.0}},
        {"model_corrector": "neon", "model_corrector_kwargs": {"weight": 0.5}},
    ),
}
#: Settings recorded through the item structure the fit reads (ItemCodec), not the config.
ITEM_SETTINGS = ("data_field", "condition_field", "fields")


def _fingerprint(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"synthetic_fraction": 0.5, "generations": 2, "seed": 0}
    config = LoopConfig.from_arguments(base | changes)
    return build(config, config.corrector)


def _item(**changes: Any) -> dict[str, Any]:
    item = (torch.zeros(2), torch.zeros(2), torch.zeros(2))
    arguments = {"data_field": 0, "condition_field": None, "fields": None} | changes
    rules = {key: "data" for key in arguments["fields"] or {}}
    codec = ItemCodec.infer(item, arguments["data_field"], arguments["condition_field"], rules=rules)
    return codec.to_json()


def test_every_deciding_setting_is_in_the_fingerprint_and_no_other_is() -> None:
    assert set(OTHER) == {s.name for s in LOOP_SETTINGS}
    for setting in LOOP_SETTINGS:
        base, other = PAIRS.get(setting.name, ({}, {setting.name: OTHER[setting.name]}))
        if setting.name in ITEM_SETTINGS:
            changed = _item(**other) != _item()
        else:
            changed = _fingerprint(**other) != _fingerprint(**base)
        assert changed == (setting.role == "deciding"), (setting.name, setting.role)


def test_unknown_and_missing_settings_are_type_errors_and_checks_name_the_setting() -> None:
    with pytest.raises(TypeError, match=r"unexpected arguments \['synthetic_fractoin'\]"):
        check_settings({"synthetic_fractoin": 0.5, "generations": 1})
    with pytest.raises(TypeError, match=r"missing the required arguments \['generations'\]"):
        check_settings({"synthetic_fraction": 0.5})
    for name, bad in (("generations", -1), ("shard_rows", 0), ("dry_run", "yes"), ("seed", 1.5)):
        with pytest.raises(ValueError, match=f"`{name}`"):
            check_settings({"synthetic_fraction": 0.5, "generations": 1, name: bad})


def _comparable(config: LoopConfig) -> dict[str, Any]:
    parts = (config.policy, config.corrector, config.model_corrector)
    described = [None if part is None else part.describe() for part in parts]
    plain = {k: v for k, v in vars(config).items() if k not in ("policy", "corrector", "model_corrector")}
    return {**plain, "described": described}


def test_the_callback_passes_every_setting_through() -> None:
    """SelfConsumingLoop's signature hands each argument to the declaration under its own name."""
    for setting in LOOP_SETTINGS:
        base, other = PAIRS.get(setting.name, ({}, {setting.name: OTHER[setting.name]}))
        arguments = {"synthetic_fraction": 0.5, "generations": 2} | base | other
        if setting.name == "initial_images":
            arguments["images_per_generation"] = 16
        expected = _comparable(LoopConfig.from_arguments(arguments))
        assert _comparable(SelfConsumingLoop(**arguments).config) == expected, setting.name
        assert expected != _comparable(LoopConfig.from_arguments({"synthetic_fraction": 0.5, "generations": 2})), (
            setting.name
        )
