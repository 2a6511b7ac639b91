"""The structure of one training item and the batch of synthetic points built from it.

Real items may be a tensor, a tuple/list of fields or a dict of fields. A model generates one
field (the *data* field); the other fields of a synthetic item (labels, prompts, ids) are
copied from a real item, its *source*. Conditional models receive the *condition* field of the
source items when sampling, so a generated point keeps the label it was generated for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import default_collate

__all__ = ["FieldKey", "ItemCodec", "SyntheticBatch"]

FieldKey = int | str | None
"""Position (tuple/list items), key (dict items) or ``None`` (items that are a tensor)."""

_LEAF_KINDS = ("tensor", "int", "float", "bool", "str")


def _leaf_kind(value: Any) -> str | None:
    if isinstance(value, Tensor):
        return "tensor"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return None


@dataclass
class SyntheticBatch:
    """A batch of synthetic points, as samplers and correctors see it.

    Attributes:
        data: the generated field, shape ``(num_samples, ...)``.
        source_index: shape ``(num_samples,)``, int64: the real item whose other fields
            (labels, prompts, ...) each synthetic item carries.
        conditions: the batched condition field of the source items (a tensor with first
            dimension ``num_samples`` or a list of length ``num_samples``), ``None`` for
            unconditional models.
        fields: fields built for the synthetic items themselves rather than copied from their
            source (:mod:`~sclc_lightning.items.contract`): those the model generated with the data
            and, once derived, those built from it; tensors with first dimension ``num_samples``.

    Examples:
        >>> import torch
        >>> batch = SyntheticBatch(torch.zeros(3, 2), torch.tensor([4, 0, 7]), conditions=torch.tensor([1, 0, 1]))
        >>> len(batch), batch.data.shape
        (3, torch.Size([3, 2]))
    """

    data: Tensor
    source_index: Tensor
    conditions: Any = None
    fields: dict[FieldKey, Tensor] | None = None

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def select(self, index: Tensor) -> SyntheticBatch:
        """Rows ``index`` (a 1-D int64 tensor) of every field, in that order."""
        conditions = self.conditions
        if isinstance(conditions, Tensor):
            conditions = conditions[index]
        elif conditions is not None:
            conditions = [conditions[i] for i in index.tolist()]
        fields = None if self.fields is None else {k: v[index] for k, v in self.fields.items()}
        return SyntheticBatch(self.data[index], self.source_index[index], conditions, fields)

    def with_data(self, data: Tensor) -> SyntheticBatch:
        """The same batch with its data field replaced (the generated fields stay)."""
        return replace(self, data=data)

    def with_fields(self, fields: dict[FieldKey, Tensor]) -> SyntheticBatch:
        """The same batch with ``fields`` added to its built fields."""
        return replace(self, fields={**(self.fields or {}), **fields})

    @staticmethod
    def concat(batches: Sequence[SyntheticBatch]) -> SyntheticBatch:
        """Concatenate batches along the first dimension."""
        if not batches:
            raise ValueError("`batches` must not be empty.")
        conditions: Any = None
        if batches[0].conditions is not None:
            first = batches[0].conditions
            if isinstance(first, Tensor):
                conditions = torch.cat([b.conditions for b in batches])
            else:
                conditions = [c for b in batches for c in b.conditions]
        fields = None
        if batches[0].fields is not None:
            fields = {k: torch.cat([b.fields[k] for b in batches]) for k in batches[0].fields}  # type: ignore[index]
        return SyntheticBatch(
            torch.cat([b.data for b in batches]),
            torch.cat([b.source_index for b in batches]),
            conditions,
            fields,
        )


def _check_tensor_item(data_field: FieldKey, condition_field: FieldKey, rules: Mapping[FieldKey, str] | None) -> None:
    """Refuse field names and built fields for items that are a tensor (they have no fields)."""
    if data_field is not None or condition_field is not None:
        raise ValueError(
            "Real items are tensors, so `data_field` and `condition_field` must be None,"
            f" got data_field={data_field!r}, condition_field={condition_field!r}."
        )
    if rules:
        raise ValueError(f"Real items are tensors, which have no fields to build; got fields {dict(rules)!r}.")


def _fields_of(example: Any) -> tuple[str, tuple[FieldKey, ...], list[Any], FieldKey]:
    """The container of a tuple, list or dict item (``"tuple"``, ``"list"``, ``"dict"``), its
    keys, its values and its default data field (position 0, or the first tensor-valued key).

    Raises:
        TypeError: the item is none of these, or a dict item has a key that is not a string.
    """
    keys: tuple[FieldKey, ...]
    if isinstance(example, (tuple, list)):
        return "tuple" if isinstance(example, tuple) else "list", tuple(range(len(example))), list(example), 0
    if isinstance(example, Mapping):
        keys = tuple(example.keys())
        if not all(isinstance(k, str) for k in keys):
            raise TypeError(f"Dict items must have string keys, got keys {list(keys)!r}.")
        values = [example[k] for k in keys]
        return "dict", keys, values, next((k for k, v in zip(keys, values) if isinstance(v, Tensor)), None)
    raise TypeError(
        f"Real items must be a tensor, a tuple/list of fields or a dict of fields, got {type(example).__name__}."
    )


def _field_kind(key: FieldKey, value: Any) -> str:
    """The kind of field ``key`` (one of ``_LEAF_KINDS``), refused with a ``TypeError`` when it has none."""
    kind = _leaf_kind(value)
    if kind is None:
        raise TypeError(
            f"Field {key!r} of the real items has type {type(value).__name__}; supported"
            f" field types are {', '.join(_LEAF_KINDS)}."
        )
    return kind


def _data_value(keys: tuple[FieldKey, ...], values: list[Any], data_key: FieldKey) -> Tensor:
    """The value of the data field, which must be one of ``keys`` and hold a tensor."""
    if data_key not in keys:
        raise ValueError(f"`data_field` must be one of {list(keys)!r}, got {data_key!r}.")
    data_value = values[keys.index(data_key)]
    if not isinstance(data_value, Tensor):
        raise TypeError(f"`data_field` {data_key!r} must hold a tensor, got {type(data_value).__name__}.")
    return data_value


def _check_condition_field(keys: tuple[FieldKey, ...], data_key: FieldKey, condition_field: FieldKey) -> None:
    """Refuse a condition field that is not a field of the item or is the data field."""
    if condition_field is not None and (condition_field not in keys or condition_field == data_key):
        raise ValueError(
            f"`condition_field` must be one of {[k for k in keys if k != data_key]!r} or None, got {condition_field!r}."
        )


@dataclass(frozen=True)
class ItemCodec:
    """How to read the fields of an item and rebuild an item from stored fields.

    Use :meth:`infer` on one real item. Every leaf must be a tensor, ``int``, ``float``,
    ``bool`` or ``str`` so that synthetic items can be stored without pickling.

    Examples:
        >>> codec = ItemCodec.infer((torch.zeros(2), 3), condition_field=1)
        >>> codec.data_key, codec.condition_key
        (0, 1)
    """

    container: str
    keys: tuple[FieldKey, ...]
    kinds: tuple[str, ...]
    data_key: FieldKey
    condition_key: FieldKey
    data_shape: tuple[int, ...]
    data_dtype: torch.dtype
    #: ``(key, rule)`` of every field not copied from the source item (:mod:`.contract`), the
    #: rule as text (``"data"``, ``"shift"``, ``"generated"``, ``"callable:module:name"``).
    rules: tuple[tuple[FieldKey, str], ...] = ()

    @classmethod
    def infer(
        cls,
        example: Any,
        data_field: FieldKey = None,
        condition_field: FieldKey = None,
        rules: Mapping[FieldKey, str] | None = None,
    ) -> ItemCodec:
        """Read the structure of ``example`` (one real item).

        Args:
            example: one item of the real dataset.
            data_field: the generated field: a position for tuple/list items, a key for dict
                items, ``None`` for the default (the item itself when it is a tensor, position
                0 for tuples, the first tensor-valued key for dicts).
            condition_field: the field passed to ``sample(..., conditions=...)``, or ``None``
                for unconditional models.
            rules: the described rule of each field that is not copied from the source item
                (:func:`~sclc_lightning.items.contract.describe_rule`); ``"copy"`` entries are dropped.

        Raises:
            TypeError: the item or one of its fields has an unsupported type.
            ValueError: ``data_field`` or ``condition_field`` does not name a field.
        """
        if isinstance(example, Tensor):
            _check_tensor_item(data_field, condition_field, rules)
            return cls("tensor", (None,), ("tensor",), None, None, tuple(example.shape), example.dtype)
        container, keys, values, default_data = _fields_of(example)
        kinds = tuple(_field_kind(key, value) for key, value in zip(keys, values))
        data_key = default_data if data_field is None else data_field
        data_value = _data_value(keys, values, data_key)
        _check_condition_field(keys, data_key, condition_field)
        return cls(
            container,
            keys,
            kinds,
            data_key,
            condition_field,
            tuple(data_value.shape),
            data_value.dtype,
            tuple((key, rule) for key, rule in (rules or {}).items() if rule != "copy"),
        )

    # -- reading items ---------------------------------------------------------------------
    def field(self, item: Any, key: FieldKey) -> Any:
        """The value of field ``key`` of ``item``."""
        return item if self.container == "tensor" else item[key]

    def data_of(self, item: Any) -> Tensor:
        """The data field of ``item``."""
        value: Tensor = self.field(item, self.data_key)
        return value

    @property
    def other_keys(self) -> tuple[FieldKey, ...]:
        """Keys of every field but the data field."""
        return tuple(k for k in self.keys if k != self.data_key)

    @property
    def generated_keys(self) -> tuple[FieldKey, ...]:
        """Keys of the fields the model generates together with the data."""
        return tuple(k for k, rule in self.rules if rule == "generated")

    @property
    def is_discrete(self) -> bool:
        """Whether the data field holds integers or booleans (tokens, codes) rather than floats."""
        return not (self.data_dtype.is_floating_point or self.data_dtype.is_complex)

    def collate_conditions(self, items: Sequence[Any]) -> Any:
        """The batched condition field of ``items`` (``None`` when unconditional)."""
        if self.condition_key is None:
            return None
        return default_collate([self.field(item, self.condition_key) for item in items])

    # -- storing fields as tensors ---------------------------------------------------------
    @staticmethod
    def storage_name(key: FieldKey) -> str:
        """Name of a non-data field in a safetensors shard."""
        return f"field.{key}"

    def encode_fields(self, items: Sequence[Any]) -> tuple[dict[str, Tensor], dict[str, list[str]]]:
        """Non-data fields of ``items`` as stacked tensors and (for strings) lists."""
        tensors: dict[str, Tensor] = {}
        strings: dict[str, list[str]] = {}
        for key, kind in zip(self.keys, self.kinds):
            if key == self.data_key:
                continue
            values = [self.field(item, key) for item in items]
            name = self.storage_name(key)
            if kind == "str":
                strings[name] = [str(v) for v in values]
            elif kind == "tensor":
                tensors[name] = torch.stack(values) if values else torch.empty(0)
            else:
                dtype = {"int": torch.int64, "float": torch.float64, "bool": torch.bool}[kind]
                tensors[name] = torch.tensor(values, dtype=dtype)
        return tensors, strings

    def build(self, data: Tensor, fields: Mapping[str, Any]) -> Any:
        """Rebuild one item from its data row and its stored non-data fields."""
        if self.container == "tensor":
            return data
        values = []
        for key, kind in zip(self.keys, self.kinds):
            if key == self.data_key:
                values.append(data)
                continue
            value = fields[self.storage_name(key)]
            if kind in ("int", "float", "bool"):
                value = value.item()
            values.append(value)
        if self.container == "dict":
            return dict(zip(self.keys, values))
        return tuple(values) if self.container == "tuple" else list(values)

    # -- manifest --------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A JSON-safe description, stored in the manifest (``fields`` only when a field is not
        copied, so that runs made before the item contract read the same)."""
        spec: dict[str, Any] = {
            "container": self.container,
            "keys": list(self.keys),
            "kinds": list(self.kinds),
            "data_key": self.data_key,
            "condition_key": self.condition_key,
            "data_shape": list(self.data_shape),
            "data_dtype": str(self.data_dtype).removeprefix("torch."),
        }
        if self.rules:
            spec["fields"] = [[key, rule] for key, rule in self.rules]
        return spec

    @classmethod
    def from_json(cls, spec: Mapping[str, Any]) -> ItemCodec:
        """Inverse of :meth:`to_json`."""
        return cls(
            spec["container"],
            tuple(spec["keys"]),
            tuple(spec["kinds"]),
            spec["data_key"],
            spec["condition_key"],
            tuple(spec["data_shape"]),
            getattr(torch, spec["data_dtype"]),
            tuple((key, rule) for key, rule in spec.get("fields", [])),
        )
