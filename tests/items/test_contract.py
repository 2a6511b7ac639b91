"""The item contract: rules, their checks against real items, the audit and the derived fields."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sclc_lightning.items.codec import ItemCodec
from sclc_lightning.items.contract import (
    IGNORE_INDEX,
    ItemContractError,
    audit_indices,
    audit_real_fields,
    check_rules,
    derive_fields,
    describe_rule,
    resolve_rules,
    shifted,
)


def reverse(data: torch.Tensor) -> torch.Tensor:
    return data.flip(-1)


def tokens(n: int = 8, length: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randint(10, (n, length + 1), generator=torch.Generator().manual_seed(seed))


def hf_items(n: int = 8) -> list[dict[str, Any]]:
    return [{"input_ids": s[:-1], "labels": s[:-1].clone()} for s in tokens(n)]


def shift_items(n: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(s[:-1], s[1:]) for s in tokens(n)]


def test_rules_resolve_names_paths_and_callables() -> None:
    rules = resolve_rules({"a": "data", "b": "tests.items.test_contract:reverse", 2: reverse})
    assert rules["a"] == "data" and rules["b"] is reverse and rules[2] is reverse
    assert describe_rule(rules["b"]) == "callable:tests.items.test_contract:reverse"
    with pytest.raises(ItemContractError, match=r"`fields\['a'\]` must be one of .*got 'labels'"):
        resolve_rules({"a": "labels"})
    with pytest.raises(
        ItemContractError, match=r"'tests.items.test_contract:nothing' does not name an importable object"
    ):
        resolve_rules({"a": "tests.items.test_contract:nothing"})
    with pytest.raises(ItemContractError, match="keys are field names or positions, got True"):
        resolve_rules({True: "data"})


def test_rules_must_fit_their_fields() -> None:
    item = {"input_ids": torch.zeros(4, dtype=torch.int64), "mask": torch.zeros(3), "label": 1, "text": "a"}
    codec = ItemCodec.infer(item, "input_ids", "label")
    check_rules({"mask": "copy", "text": "copy"}, codec, item)
    cases = [
        ({"nothing": "data"}, r"names field 'nothing'"),
        ({"input_ids": "data"}, r"the data field itself"),
        ({"label": "data"}, r"'label' is the condition field"),
        ({"mask": "data"}, r"field 'mask' is torch.float32 of shape \(3,\) and the data field 'input_ids' is"),
        ({"text": reverse}, r"field 'text' holds strings, which are only copied"),
    ]
    for rules, match in cases:
        with pytest.raises(ItemContractError, match=match):
            check_rules(rules, codec, item)
    floats = {"x": torch.zeros(4), "y": torch.zeros(4)}
    with pytest.raises(
        ItemContractError, match=r"'shift', which builds next-token targets, but the data is torch.float32"
    ):
        check_rules({"y": "shift"}, ItemCodec.infer(floats, "x"), floats)


def test_shift_ignores_the_last_position() -> None:
    data = torch.tensor([[1, 2, 3], [4, 5, 6]])
    assert shifted(data).tolist() == [[2, 3, IGNORE_INDEX], [5, 6, IGNORE_INDEX]]


def test_derived_fields_follow_the_data_and_callables_are_checked() -> None:
    items = hf_items()
    codec = ItemCodec.infer(items[0], "input_ids", rules={"labels": "data"})
    data = torch.stack([i["input_ids"] for i in items]).flip(0)
    out = derive_fields({"labels": "data"}, codec, data, items[0])
    assert torch.equal(out["labels"], data) and out["labels"].data_ptr() != data.data_ptr()
    assert torch.equal(derive_fields({"labels": reverse}, codec, data, items[0])["labels"], data.flip(-1))
    with pytest.raises(ItemContractError, match=r"returned torch.float32 of shape \(8, 5\) for field 'labels'"):
        derive_fields({"labels": lambda d: d.float()}, codec, data, items[0])


def test_audit_finds_copies_and_shifts_of_the_data() -> None:
    items = hf_items()
    codec = ItemCodec.infer(items[0], "input_ids")
    with pytest.raises(ItemContractError, match=r"Field 'labels' equals the data field 'input_ids' on every real item"):
        audit_real_fields(items, codec, {}, takes_conditions=False, sampler="LM.sample")
    audit_real_fields(items, codec, {"labels": "data"}, takes_conditions=False, sampler="LM.sample")
    pairs = shift_items()
    codec = ItemCodec.infer(pairs[0])
    with pytest.raises(
        ItemContractError, match=r"Field 1 is the data field shifted by one position 0.*fields=\{1: 'shift'\}"
    ):
        audit_real_fields(pairs, codec, {}, takes_conditions=False, sampler="LM.sample")
    # labels of -100 (padding) are left out of the comparison
    padded = [{"input_ids": i["input_ids"], "labels": i["labels"].clone()} for i in items]
    for item in padded:
        item["labels"][-2:] = IGNORE_INDEX
    with pytest.raises(ItemContractError, match="equals the data field"):
        audit_real_fields(padded, ItemCodec.infer(padded[0], "input_ids"), {}, takes_conditions=False, sampler="s")


def test_audit_leaves_unrelated_fields_alone() -> None:
    items = [{"input_ids": s[:-1], "labels": s[1:].flip(0)} for s in tokens()]  # neither a copy nor a shift
    audit_real_fields(items, ItemCodec.infer(items[0], "input_ids"), {}, takes_conditions=False, sampler="s")
    ignored = [{"x": torch.ones(3, dtype=torch.int64), "y": torch.full((3,), IGNORE_INDEX)} for _ in range(3)]
    audit_real_fields(ignored, ItemCodec.infer(ignored[0], "x"), {}, takes_conditions=False, sampler="s")


def test_audit_refuses_a_conditional_sampler_without_a_condition_field() -> None:
    items = [(torch.zeros(2), 3), (torch.ones(2), 1)]
    codec = ItemCodec.infer(items[0])
    with pytest.raises(ItemContractError, match=r"carry field 1 .*Model.sample takes `conditions`.*condition_field=1"):
        audit_real_fields(items, codec, {}, takes_conditions=True, sampler="Model.sample")
    audit_real_fields(items, codec, {1: "copy"}, takes_conditions=True, sampler="Model.sample")
    audit_real_fields(items, codec, {}, takes_conditions=False, sampler="Model.sample")
    audit_real_fields(items, ItemCodec.infer(items[0], condition_field=1), {}, takes_conditions=True, sampler="s")


def test_audit_reads_items_spread_over_the_dataset() -> None:
    assert audit_indices(5) == [0, 1, 2, 3, 4]
    spread = audit_indices(10_000)
    assert len(spread) == 256 and spread[0] == 0 and spread[-1] == 9_999 and spread == sorted(set(spread))


def test_codec_records_rules_only_when_a_field_is_built() -> None:
    item = {"input_ids": torch.zeros(3, dtype=torch.int64), "labels": torch.zeros(3, dtype=torch.int64)}
    plain = ItemCodec.infer(item, "input_ids", rules={"labels": "copy"})
    assert "fields" not in plain.to_json()  # as runs made before the contract recorded it
    built = ItemCodec.infer(item, "input_ids", rules={"labels": "data"})
    assert built.to_json()["fields"] == [["labels", "data"]] and ItemCodec.from_json(built.to_json()) == built
    generated = ItemCodec.infer((torch.zeros(2), torch.zeros(1)), rules={1: "generated"})
    assert generated.generated_keys == (1,) and not generated.is_discrete and plain.is_discrete


def test_a_callable_rule_must_take_the_data() -> None:
    with pytest.raises(ItemContractError, match=r"`fields\['labels'\]` callable:.* must be callable as f\(data\)"):
        resolve_rules({"labels": lambda data, other: data})
