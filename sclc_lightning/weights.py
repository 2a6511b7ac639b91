"""Start a loop from trained weights: a converged or pretrained generation 0.

Bertrand et al. (2024) retrain from a converged generation 0, the same for every λ of a grid.
Train it once (``sclc fit --config R.yaml --loop.generations 0``), then start every grid point
from its checkpoint with ``--init_weights <ckpt> --loop.initial_images 0``.
:func:`load_initial_weights` reads

- a Lightning checkpoint (``.ckpt``; its ``state_dict``), loaded with ``weights_only=True``;
- a safetensors file holding a state dict;
- a diffusers model folder (``diffusion_pytorch_model.safetensors``, e.g. a saved
  ``UNet2DModel``), usually into a submodule (``module="unet"``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["load_initial_weights", "read_state_dict"]

DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "model.safetensors")


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The tensors of a Lightning checkpoint, a safetensors file or a diffusers model folder.

    Raises:
        FileNotFoundError: nothing at ``path``, or a folder without safetensors weights.
        ValueError: the file is not a checkpoint or state dict this function reads.
    """
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in DIFFUSERS_WEIGHTS if (path / name).is_file()]
        if not found:
            raise FileNotFoundError(
                f"{str(path)!r} is a folder without {' or '.join(DIFFUSERS_WEIGHTS)} (diffusers layout)."
            )
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"No weights file at {str(path)!r}.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"Cannot read {str(path)!r} as a Lightning checkpoint or torch state dict (weights only): {err}"
        ) from err
    if isinstance(content, Mapping) and isinstance(content.get("state_dict"), Mapping):
        content = content["state_dict"]
    if not isinstance(content, Mapping) or not all(isinstance(v, Tensor) for v in content.values()):
        raise ValueError(f"{str(path)!r} holds no state dict (a mapping from names to tensors).")
    return dict(content)


def _submodule(model: nn.Module, name: str) -> nn.Module:
    try:
        target = model.get_submodule(name)
    except AttributeError as err:
        children = ", ".join(n for n, _ in model.named_children()) or "none"
        raise ValueError(
            f"{type(model).__name__} has no submodule {name!r} to load weights into (its children: {children})."
        ) from err
    return target


def load_initial_weights(
    model: nn.Module, path: str | os.PathLike[str], module: str | None = None
) -> dict[str, int | str]:
    """Load the weights at ``path`` into ``model`` (or its submodule ``module``), strictly.

    Returns:
        What was loaded: ``{"path", "module", "tensors"}``.

    Raises:
        ValueError: the weights do not fit (the message lists missing and unexpected names and
            shape mismatches).
    """
    state = read_state_dict(path)
    target = model if module is None else _submodule(model, module)
    where = type(model).__name__ + ("" if module is None else f".{module}")
    own = target.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or mismatched:

        def few(names: list[str]) -> str:
            return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")

        problems = []
        if missing:
            problems.append(f"{len(missing)} missing ({few(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected ({few(unexpected)})")
        if mismatched:
            shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched]
            problems.append(f"{len(mismatched)} of another shape ({few(shapes)})")
        hint = "" if module is not None else "; weights of one part of the model load with `module=` (e.g. 'unet')"
        raise ValueError(f"The weights in {str(path)!r} do not fit {where}: {'; '.join(problems)}{hint}.")
    target.load_state_dict(state, strict=True)
    return {"path": str(path), "module": module or "", "tensors": len(state)}
