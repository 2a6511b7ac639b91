"""The diffusers ``UNet2DModel`` shared by the image models."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["build_unet", "diffusers_module", "load_pretrained_unet"]


def diffusers_module() -> Any:
    """``diffusers``, untyped: it builds its classes lazily, which mypy cannot follow."""
    return importlib.import_module("diffusers")


#: diffusers' UNet2DModel normalises in 32 groups: every block's channels are a multiple of it.
NORM_GROUPS = 32


def check_blocks(block_out_channels: Any) -> tuple[int, ...]:
    """``block_out_channels`` as a tuple, refused unless it is a non-empty list of channel counts
    that are multiples of :data:`NORM_GROUPS` (what the UNet's group normalisation needs)."""
    from sclc_lightning._checks import is_integer

    ok = isinstance(block_out_channels, (list, tuple)) and len(block_out_channels) > 0
    ok = ok and all(is_integer(c) and c >= NORM_GROUPS and c % NORM_GROUPS == 0 for c in block_out_channels)
    if not ok:
        raise ValueError(
            "`block_out_channels` must be a non-empty list of channel counts, each a multiple of"
            f" {NORM_GROUPS} (the UNet's normalisation groups), e.g. [32, 64, 64]; got {block_out_channels!r}."
        )
    return tuple(int(c) for c in block_out_channels)


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


def load_pretrained_unet(path: str, image_size: int, channels: int, num_classes: int | None) -> torch.nn.Module:
    """The ``UNet2DModel`` saved in the diffusers folder ``path`` (``config.json`` and weights, as
    written by ``save_pretrained`` or the ``unet/`` folder of a downloaded pipeline), read from
    disk only. Its size, channels and classes must be the model's.

    Raises:
        FileNotFoundError: ``path`` holds no ``config.json``.
        ValueError: the UNet's ``sample_size``, channels or class embeddings differ from the model's.
    """
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"`pretrained_unet` {path!r} is not a diffusers model folder (no config.json): save one with"
            " `UNet2DModel.save_pretrained(folder)` or point to the `unet/` folder of a downloaded pipeline."
        )
    unet: torch.nn.Module = diffusers_module().UNet2DModel.from_pretrained(str(folder), local_files_only=True)
    config: Any = getattr(unet, "config")  # noqa: B009 - nn.Module.__getattr__ is typed as Tensor | Module
    size = config.sample_size
    expected = {
        "sample_size": (image_size, size if isinstance(size, int) else tuple(size)),
        "in_channels": (channels, config.in_channels),
        "out_channels": (channels, config.out_channels),
        "num_class_embeds": (num_classes, config.num_class_embeds),
    }
    wrong = [
        f"{key} {found!r} (the model has {want!r})"
        for key, (want, found) in expected.items()
        if found != want and not (key == "sample_size" and found == (want, want))
    ]
    if wrong:
        raise ValueError(f"The UNet in {path!r} does not fit: {', '.join(wrong)}.")
    return unet
