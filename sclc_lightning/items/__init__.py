"""What an item is: the structure of a training item, its encoding as tensors, the rules for the
fields of synthetic items, and the real data seen as items.

- :mod:`~sclc_lightning.items.codec`: :class:`ItemCodec` (one item ⇄ named tensors) and
  :class:`SyntheticBatch` (data plus the fields that travel with it);
- :mod:`~sclc_lightning.items.contract`: the ``fields=`` rules and the audit of real items;
- :mod:`~sclc_lightning.items.real`: :class:`RealData`, a dataset's items as one batch.
"""

from sclc_lightning.items.codec import ItemCodec, SyntheticBatch
from sclc_lightning.items.real import RealData

__all__ = ["ItemCodec", "RealData", "SyntheticBatch"]
