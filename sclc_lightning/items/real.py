"""Read access to the real training data, for correctors and for building synthetic items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from sclc_lightning.items.codec import ItemCodec, SyntheticBatch

__all__ = ["RealData"]


class RealData:
    """The real dataset as correctors see it: reference points and their conditions.

    Args:
        dataset: the user's real (map-style) training dataset, unchanged.
        codec: the structure of its items.

    Examples:
        >>> import torch
        >>> real = RealData([torch.tensor([float(i)]) for i in range(4)], ItemCodec.infer(torch.zeros(1)))
        >>> real.sample(2, torch.Generator().manual_seed(0)).data.shape
        torch.Size([2, 1])
    """

    def __init__(self, dataset: Dataset[Any], codec: ItemCodec):
        self.dataset = dataset
        self.codec = codec
        self._data: Tensor | None = None
        self._conditions: Any = None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def items(self, indices: Sequence[int]) -> list[Any]:
        """The real items at ``indices``."""
        return [self.dataset[int(i)] for i in indices]

    def batch(self, indices: Tensor) -> SyntheticBatch:
        """The data, conditions and generated fields (``codec.generated_keys``) of the real items
        at ``indices`` (1-D int64)."""
        generated = self.codec.generated_keys
        if self._data is not None and not generated:
            conditions = self._conditions
            if isinstance(conditions, Tensor):
                conditions = conditions[indices]
            elif conditions is not None:
                conditions = [conditions[i] for i in indices.tolist()]
            return SyntheticBatch(self._data[indices], indices.clone(), conditions)
        if not len(indices):
            return self.empty_batch()
        items = self.items(indices.tolist())
        data = torch.stack([self.codec.data_of(item) for item in items])
        fields = {key: self._stack(items, key) for key in generated} if generated else None
        return SyntheticBatch(data, indices.clone(), self.codec.collate_conditions(items), fields)

    def _stack(self, items: Sequence[Any], key: Any) -> Tensor:
        values = [self.codec.field(item, key) for item in items]
        if isinstance(values[0], Tensor):
            return torch.stack(values)
        kind = self.codec.kinds[self.codec.keys.index(key)]
        return torch.tensor(values, dtype={"int": torch.int64, "float": torch.float64, "bool": torch.bool}[kind])

    def empty_batch(self) -> SyntheticBatch:
        """A batch of no items, shaped like the real ones (generated fields included)."""
        codec = self.codec
        empty = torch.empty((0, *codec.data_shape), dtype=codec.data_dtype)
        fields = None
        if codec.generated_keys:
            example = self.items([0])[0]
            fields = {}
            for key in codec.generated_keys:
                value = self._stack([example], key)
                fields[key] = torch.empty((0, *value.shape[1:]), dtype=value.dtype)
        return SyntheticBatch(empty, torch.empty(0, dtype=torch.int64), None, fields)

    def conditions_of(self, indices: Tensor) -> Any:
        """The batched condition field of the real items at ``indices`` (``None`` when unconditional)."""
        if self.codec.condition_key is None:
            return None
        if self._data is not None:
            return self.batch(indices).conditions
        return self.codec.collate_conditions(self.items(indices.tolist()))

    def sample(self, num: int, generator: torch.Generator) -> SyntheticBatch:
        """``num`` distinct real points drawn uniformly (with replacement if ``num > len(self)``)."""
        n = len(self)
        if num <= n:
            indices = torch.randperm(n, generator=generator)[:num]
        else:
            indices = torch.randint(n, (num,), generator=generator)
        return self.batch(indices)

    def data(self) -> Tensor:
        """Every real data point, shape ``(n, ...)``; read once and cached."""
        if self._data is None:
            full = self.batch(torch.arange(len(self)))
            self._data, self._conditions = full.data, full.conditions
        return self._data

    def conditions(self) -> Any:
        """The batched condition field of every real item (``None`` when unconditional)."""
        self.data()
        return self._conditions
