"""The sampling settings the bundled models share (the loop's ``sample_kwargs``), and the
exponential moving average of the weights that the diffusion models sample with."""

from __future__ import annotations

import math
from typing import Any

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["check_temperature", "exponential_average", "sampling_weights"]


def check_temperature(temperature: Any, owner: str) -> float:
    """``temperature`` as a float, if it is a finite number > 0.

    Raises:
        ValueError: naming ``owner`` (the model) and the value.

    Examples:
        >>> check_temperature(0.9, "GaussianModel")
        0.9
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < math.inf:
        raise ValueError(f"{owner}.sample: `temperature` must be a finite number > 0, got {temperature!r}.")
    return float(temperature)


def exponential_average(net: nn.Module, decay: float | None) -> AveragedModel | None:
    """An exponential moving average of ``net``'s weights (torch's ``AveragedModel``, updated by
    ``update_parameters`` after each step), or ``None`` without a decay."""
    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay)) if decay is not None else None


def sampling_weights(average: AveragedModel | None, net: nn.Module) -> nn.Module:
    """The averaged weights when kept and updated at least once (weights loaded into a fresh
    model have not been), else ``net``'s own."""
    return average.module if average is not None and int(average.n_averaged) > 0 else net
