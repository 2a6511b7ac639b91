"""Deprecated path: moved to :mod:`sclc_lightning.callbacks.generation_csv`."""

from sclc_lightning._lazy import forward

__getattr__, __dir__ = forward(__name__, "sclc_lightning.callbacks.generation_csv")
