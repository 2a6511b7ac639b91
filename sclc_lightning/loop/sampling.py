r"""Sampling a generation across ranks, and the checks every sampled or corrected point passes.

Each rank samples its contiguous share of the :math:`\lfloor \lambda n \rfloor` points with its
own generator; the points must match the real data field (shape, dtype, finite values) or the run
stops with a :class:`SyntheticDataError` naming the generation and the culprit. A failure on any
rank is raised on every rank (:func:`agree`), never left waiting at a barrier.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from tqdm.auto import tqdm

from sclc_lightning._trainer import eval_mode
from sclc_lightning.data.budget import derive_seed, make_generator, rank_slice
from sclc_lightning.data.items import FieldKey, ItemCodec, SyntheticBatch
from sclc_lightning.data.real import RealData

__all__ = ["SyntheticDataError", "agree", "check_points", "sample_arguments", "sample_share"]


class SyntheticDataError(RuntimeError):
    """A model or corrector produced synthetic data of the wrong count, shape, dtype or values."""


def sample_arguments(pl_module: pl.LightningModule, condition_field: FieldKey) -> frozenset[str]:
    """The optional arguments (``generator``, ``conditions``) the module's ``sample`` takes.

    Raises:
        TypeError: the module has no ``sample``, or conditions are configured and it takes none.
    """
    sample = getattr(pl_module, "sample", None)
    if not callable(sample):
        raise TypeError(
            f"SelfConsumingLoop needs a `sample(num_samples, *, generator=None, conditions=None)`"
            f" method on the LightningModule; {type(pl_module).__name__} has none."
        )
    params = inspect.signature(sample).parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    names = frozenset(name for name in ("generator", "conditions") if name in params or takes_kwargs)
    if condition_field is not None and "conditions" not in names:
        raise TypeError(
            f"`condition_field` is {condition_field!r} but {type(pl_module).__name__}.sample"
            " takes no `conditions` argument."
        )
    return names


def check_points(points: Any, codec: ItemCodec, count: int, where: str, upcast: bool = False) -> Tensor:
    """``points`` if they fit the real data field; ``upcast``: half-precision floats (the autocast
    output of a mixed-precision trainer) are converted to the data's float dtype.

    Raises:
        SyntheticDataError: not a tensor, or the wrong shape, dtype or non-finite values; the
            message starts with ``where``.
    """
    if not isinstance(points, Tensor):
        raise SyntheticDataError(f"{where} must return a tensor, got {type(points).__name__}.")
    expected = (count, *codec.data_shape)
    if tuple(points.shape) != expected:
        raise SyntheticDataError(
            f"{where} returned shape {tuple(points.shape)}, expected {expected} ({count} points"
            f" shaped like the real data field)."
        )
    half = (torch.float16, torch.bfloat16)
    if upcast and points.dtype in half and codec.data_dtype.is_floating_point and codec.data_dtype not in half:
        points = points.to(codec.data_dtype)
    if points.dtype != codec.data_dtype:
        raise SyntheticDataError(f"{where} returned dtype {points.dtype}, the real data is {codec.data_dtype}.")
    if points.is_floating_point() and not bool(torch.isfinite(points).all()):
        bad = ~torch.isfinite(points)
        count_bad = int(bad.flatten(1).any(1).sum()) if points.dim() > 1 else int(bad.sum())
        raise SyntheticDataError(f"{where} returned {count_bad} points with non-finite values.")
    return points


def _draw_indices(size: int, num: int, generator: torch.Generator) -> Tensor:
    """``num`` indices into ``range(size)``: distinct when ``num <= size``, else with replacement."""
    if num <= size:
        return torch.randperm(size, generator=generator)[:num]
    return torch.randint(size, (num,), generator=generator)


def _move(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, Tensor) else value


def sample_share(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    real: RealData,
    *,
    total: int,
    generation: int,
    seed: int,
    batch_size: int,
    arguments: frozenset[str],
    check: Callable[[], None] | None = None,
) -> SyntheticBatch:
    """Sample this rank's share of generation ``generation``'s ``total`` synthetic points.

    The source real items (whose labels condition the samples and whose other fields the
    synthetic items keep) are drawn once for all ranks; this rank takes its
    :func:`~sclc_lightning.data.budget.rank_slice` and samples it in batches of ``batch_size``,
    calling ``check`` before each (it raises to stop sampling).
    """
    templates = _draw_indices(len(real), total, make_generator(seed, "templates", generation))
    share = templates[rank_slice(total, trainer.world_size, trainer.global_rank)]
    device = pl_module.device
    generator = make_generator(seed, "sample", generation, trainer.global_rank)
    if device.type != "cpu":
        generator = torch.Generator(device=device).manual_seed(
            derive_seed(seed, "sample", generation, trainer.global_rank)
        )
    codec = real.codec
    sample = getattr(pl_module, "sample")  # noqa: B009 - LightningModule.__getattr__ is typed as Tensor | Module
    where = f"generation {generation}, {type(pl_module).__name__}.sample"
    mixed_precision = str(trainer.precision).endswith("-mixed")
    show = trainer.is_global_zero and trainer.progress_bar_callback is not None
    chunks: list[SyntheticBatch] = []
    with (
        eval_mode(pl_module, trainer),
        tqdm(total=len(share), desc=f"Sampling generation {generation}", disable=not show, leave=False) as bar,
    ):
        for start in range(0, len(share), batch_size):
            if check is not None:
                check()
            index = share[start : start + batch_size]
            kwargs: dict[str, Any] = {}
            if "generator" in arguments:
                kwargs["generator"] = generator
            conditions = real.conditions_of(index)
            if conditions is not None:
                kwargs["conditions"] = _move(conditions, device)
            points = check_points(sample(len(index), **kwargs), codec, len(index), where, upcast=mixed_precision)
            chunks.append(SyntheticBatch(points.cpu(), index, conditions))
            bar.update(len(index))
    if not chunks:  # a rank whose share is empty (fewer points than ranks)
        return SyntheticBatch(torch.empty((0, *codec.data_shape), dtype=codec.data_dtype), share)
    return SyntheticBatch.concat(chunks)


def agree(trainer: pl.Trainer, error: BaseException | None) -> None:
    """Raise the same error on every rank if any rank failed (never hang at a barrier).

    Raises:
        BaseException: ``error`` itself on a single process.
        SyntheticDataError: with several ranks, naming the first rank that failed and its error.
    """
    if trainer.world_size == 1:
        if error is not None:
            raise error
        return
    flag = torch.tensor([0 if error is None else 1], device=trainer.strategy.root_device)
    flags = trainer.strategy.all_gather(flag).reshape(-1)
    failed = torch.nonzero(flags).flatten().tolist()
    if not failed:
        return
    source = int(failed[0])
    message = f"{type(error).__name__}: {error}" if error is not None else None
    message = trainer.strategy.broadcast(message, src=source)
    raise SyntheticDataError(f"rank {source} failed: {message}") from error
