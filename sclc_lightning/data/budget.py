"""Deprecated path: moved to :mod:`sclc_lightning.mixing.budget` (seeds: :mod:`sclc_lightning.seeding`)."""

from sclc_lightning._lazy import forward

__getattr__, __dir__ = forward(__name__, "sclc_lightning.mixing.budget", "sclc_lightning.seeding")
