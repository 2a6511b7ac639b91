r"""Sampling a generation across ranks, and the checks every sampled or corrected point passes.

Each rank samples its contiguous share of the :math:`\lfloor \lambda n \rfloor` points with its
own generator; the points must match the real data field (shape, dtype, finite values) or the run
stops with a :class:`SyntheticDataError` naming the generation and the culprit. A failure on any
rank is raised on every rank (:func:`agree`), never left waiting at a barrier.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from tqdm.auto import tqdm

from sclc_lightning._trainer import eval_mode
from sclc_lightning.items.codec import ItemCodec, SyntheticBatch
from sclc_lightning.items.contract import ItemContractError, check_field
from sclc_lightning.items.real import RealData
from sclc_lightning.mixing.budget import rank_slice
from sclc_lightning.sampler import BoundSampler
from sclc_lightning.seeding import derive_seed, make_generator

__all__ = ["SyntheticDataError", "agree", "check_points", "draw_templates", "sample_share", "split_output"]


class SyntheticDataError(RuntimeError):
    """A model or corrector produced synthetic data of the wrong count, shape, dtype or values.

    Examples:
        >>> from sclc_lightning import SyntheticDataError
        >>> try:
        ...     raise SyntheticDataError("generation 2: the model returned 3 samples, 4 were asked for")
        ... except RuntimeError as err:  # a RuntimeError: the fit stops
        ...     print(type(err).__name__)
        SyntheticDataError
    """


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


def draw_templates(size: int, num: int, generator: torch.Generator) -> Tensor:
    r"""The source items of ``num`` synthetic points among ``size`` real ones.

    Distinct when ``num <= size``. Beyond that every real item is used
    :math:`\lfloor num / size \rfloor` times and the remainder is drawn without replacement, in a
    random order, so the conditions keep the real data's proportions: at :math:`\lambda = 4`
    every class is asked for exactly four times its real count.

    Examples:
        >>> sorted(draw_templates(3, 7, torch.Generator().manual_seed(0)).bincount().tolist())
        [2, 2, 3]
    """
    if num <= size:
        return torch.randperm(size, generator=generator)[:num]
    rounds, rest = divmod(num, size)
    chosen = torch.cat([torch.arange(size).repeat(rounds), torch.randperm(size, generator=generator)[:rest]])
    return chosen[torch.randperm(num, generator=generator)]


def _move(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, Tensor) else value


def split_output(out: Any, real: RealData, count: int, where: str, upcast: bool = False) -> SyntheticBatch:
    """A sampler's output as a batch (no source index yet): the data tensor, or, when fields are
    generated with the data, a mapping holding the data field and each generated field.

    Raises:
        SyntheticDataError: the wrong structure, shape, dtype or values, naming the field.
    """
    codec = real.codec
    generated = codec.generated_keys
    if not generated:
        return SyntheticBatch(check_points(out, codec, count, where, upcast), torch.empty(0, dtype=torch.int64))
    needed = [codec.data_key, *generated]
    if not isinstance(out, Mapping) or any(key not in out for key in needed):
        got = sorted(map(repr, out)) if isinstance(out, Mapping) else type(out).__name__
        raise SyntheticDataError(
            f"{where} must return a mapping of the data field and the generated fields {needed!r}"
            f" (`fields` says {list(generated)!r} are 'generated'), got {got}."
        )
    data = check_points(out[codec.data_key], codec, count, where, upcast)
    example = real.items([0])[0]
    try:
        fields = {key: check_field(out[key], codec, key, example, count, where) for key in generated}
    except ItemContractError as err:
        raise SyntheticDataError(str(err)) from None
    return SyntheticBatch(data, torch.empty(0, dtype=torch.int64), None, fields)


def sample_share(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    real: RealData,
    *,
    total: int,
    generation: int,
    seed: int,
    batch_size: int,
    sampler: BoundSampler,
    check: Callable[[], None] | None = None,
    stream: str = "sample",
    part: int = 0,
) -> SyntheticBatch:
    """Sample this rank's share of generation ``generation``'s ``total`` synthetic points.

    The source real items (whose labels condition the samples and whose other fields the
    synthetic items keep) are drawn once for all ranks; this rank takes its
    :func:`~sclc_lightning.mixing.budget.rank_slice` and samples it in batches of ``batch_size``,
    calling ``check`` before each (it raises to stop sampling). ``stream``: the purpose the
    draws are seeded for (``"sample"``; the dry run uses its own). ``part``: the sampling round
    of a selecting corrector (``0``: the first), seeded on its own.
    """
    if part:
        stream, purpose = "sample_round", "templates_round"
    else:
        purpose = "templates" if stream == "sample" else f"{stream}_templates"
    templates = draw_templates(len(real), total, make_generator(seed, purpose, generation, 0, part))
    share = templates[rank_slice(total, trainer.world_size, trainer.global_rank)]
    device = pl_module.device
    generator = make_generator(seed, stream, generation, trainer.global_rank, part)
    if device.type != "cpu":
        generator = torch.Generator(device=device)
        generator.manual_seed(derive_seed(seed, stream, generation, trainer.global_rank, part))
    where = f"generation {generation}, {sampler.name}"
    if stream not in ("sample", "sample_round"):
        where = f"dry run before generation 0 (`dry_run=False` skips it), {sampler.name}"
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
            conditions = real.conditions_of(index)
            out = sampler(len(index), generator=generator, conditions=_move(conditions, device))
            piece = split_output(out, real, len(index), where, upcast=mixed_precision)
            chunks.append(SyntheticBatch(piece.data.cpu(), index, conditions, piece.fields))
            bar.update(len(index))
    if not chunks:  # a rank whose share is empty (fewer points than ranks)
        return real.empty_batch()
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
