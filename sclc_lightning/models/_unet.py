"""The diffusers ``UNet2DModel`` shared by the image models."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["build_unet", "diffusers_module"]


def diffusers_module() -> Any:
    """``diffusers``, untyped: it builds its classes lazily, which mypy cannot follow."""
    return importlib.import_module("diffusers")


def build_unet(
    image_size: int,
    channels: int,
    block_out_channels: Sequence[int],
    layers_per_block: int,
    attention: bool,
    num_classes: int | None,
) -> torch.nn.Module:
    """A ``UNet2DModel`` with one down/up block per entry of ``block_out_channels``; attention
    blocks at the lowest resolution when ``attention``; class embeddings when ``num_classes``."""
    levels = len(block_out_channels)
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    unet: torch.nn.Module = diffusers_module().UNet2DModel(
        sample_size=image_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        num_class_embeds=num_classes,
    )
    return unet
