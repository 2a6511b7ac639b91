"""What the per-generation evaluation callbacks share: the cadence, timing and logging, evaluation
samples drawn across DDP ranks, the held-out split, and features computed once per sample set."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from tqdm.auto import tqdm
from typing_extensions import override

from sclc_lightning._checks import COUNT, NON_NEGATIVE, Range, bounded, check_arguments, plain_numbers
from sclc_lightning._trainer import current_generation, eval_mode, evaluation_seed, find_loop, sample_data
from sclc_lightning.seeding import derive_seed

__all__ = [
    "GenerationEvaluator",
    "Precomputed",
    "collect",
    "conditions_for",
    "extract",
    "held_out",
    "sample_across_ranks",
]


def sample_across_ranks(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    num_samples: int,
    *,
    seed: int,
    stream: int,
    batch_size: int,
    conditions: Tensor | None = None,
    desc: str = "Evaluating",
    sample_kwargs: dict[str, Any] | None = None,
) -> Tensor:
    """``num_samples`` samples of ``pl_module``, the same on every rank, on the CPU.

    Each of the ``world_size`` ranks draws ``ceil(num_samples / world_size)`` samples in batches
    of ``batch_size`` (rank ``r`` takes the conditions ``r * share ...``, wrapping around), the
    shares are gathered with the strategy's ``all_gather`` and cut to ``num_samples``. The draw
    of a rank is seeded by ``(seed, stream, rank)``, so for a fixed world size it is repeatable.
    ``sample_kwargs``: sampling settings instead of the loop's (``None``: the loop's).
    """
    world, rank = trainer.world_size, trainer.global_rank
    share = math.ceil(num_samples / world)
    device = pl_module.device
    generator = torch.Generator(device=device).manual_seed(derive_seed(seed, "evaluate", stream, rank))
    show = trainer.is_global_zero and trainer.progress_bar_callback is not None
    chunks: list[Tensor] = []
    with eval_mode(pl_module, trainer), tqdm(total=share, desc=desc, disable=not show, leave=False) as bar:
        for start in range(0, share, batch_size):
            count = min(batch_size, share - start)
            asked = None
            if conditions is not None:
                index = (torch.arange(count) + rank * share + start) % len(conditions)
                asked = conditions[index].to(device)
            out = sample_data(
                trainer, pl_module, count, generator=generator, conditions=asked, sample_kwargs=sample_kwargs
            )
            chunks.append(out.float() if out.is_floating_point() else out)  # whatever the sampling precision
            bar.update(count)
    mine = torch.cat(chunks)
    if world > 1:
        mine = trainer.strategy.all_gather(mine).reshape(world * share, *mine.shape[1:])
    return mine[:num_samples].cpu()


def conditions_for(labels: Tensor, num_samples: int) -> Tensor:
    """The labels asked of an evaluation draw: the held-out labels repeated to ``num_samples``."""
    return labels[torch.arange(num_samples) % len(labels)]


def collect(batches: Iterable[Any]) -> tuple[Tensor, Tensor | None]:
    """The first field of every batch, concatenated, and the second (labels) when items are tuples."""
    data, labels = [], []
    for batch in batches:
        data.append(batch[0] if isinstance(batch, (tuple, list)) else batch)
        if isinstance(batch, (tuple, list)) and len(batch) > 1:  # (data,) items carry no labels
            labels.append(torch.as_tensor(batch[1]))
    return torch.cat(data), (torch.cat(labels) if labels else None)


def held_out(trainer: pl.Trainer, who: str) -> tuple[Tensor, Tensor | None]:
    """The DataModule's test split, collected (see :func:`collect`)."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    datamodule = trainer.datamodule  # type: ignore[attr-defined]
    missing = f"{who} needs a DataModule with a `test_dataloader` (held-out data)"
    if datamodule is None or not hasattr(datamodule, "test_dataloader"):
        raise ValueError(f"{missing}; the fit has {'no DataModule' if datamodule is None else 'none'}.")
    try:
        loader = datamodule.test_dataloader()
    except MisconfigurationException:  # LightningDataModule's own, when it is not implemented
        raise ValueError(f"{missing}; {type(datamodule).__name__} does not implement one.") from None
    return collect(loader)


class Precomputed(nn.Module):
    """The identity, as torchmetrics' ``feature=``: FID and KID then take features computed once
    (by :func:`extract`) instead of running the feature network again for each metric."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def extract(network: nn.Module, data: Tensor, batch_size: int) -> Tensor:
    """``network(data)`` in batches on the network's device, gathered on the CPU as float."""
    device = next(network.parameters()).device
    with torch.no_grad():
        return torch.cat([network(chunk.to(device)).float().cpu() for chunk in data.split(batch_size)])


@plain_numbers
class GenerationEvaluator(Callback):
    """Every ``every`` generations (always at generation 0), time :meth:`evaluate` and log its
    metrics plus ``time_evaluating_s`` with the module's ``log_dict``; subclasses draw their
    samples with :meth:`draw`.

    Args:
        num_samples: samples drawn per evaluation (the same count every time, so that values
            compare).
        every: evaluate every ``every`` generations (and always at generation 0).
        batch_size: samples per ``sample`` call.
        seed: seed of the evaluation draws; `None` takes the run's seed (the loop's).

    Examples:
        >>> class SampleSpread(GenerationEvaluator):
        ...     headline = "spread"
        ...     def evaluate(self, trainer, pl_module, generation):
        ...         samples = self.draw(trainer, pl_module, generation)
        ...         return {"spread": float(samples.std())}
        >>> evaluator = SampleSpread(num_samples=256, every=5, batch_size=256, seed=0)
    """

    #: the metric quoted in the log line.
    headline: ClassVar[str] = ""
    #: Where the numeric constructor arguments must lie (subclasses taking the same arguments
    #: inherit them; ``check_arguments(Class, locals())`` checks them, the docs' tables show them).
    ranges: ClassVar[Mapping[str, Range]] = bounded(
        num_samples=Range(minimum=2), every=COUNT, batch_size=COUNT, seed=NON_NEGATIVE
    )

    def __init__(self, num_samples: int, every: int, batch_size: int, seed: int | None) -> None:
        check_arguments(GenerationEvaluator, locals())
        self.num_samples, self.every, self.batch_size = int(num_samples), int(every), int(batch_size)
        self.seed = None if seed is None else int(seed)

    @property
    def classifier_seed(self) -> int:
        """The seed of a feature network trained for the metric (FID's domain classifier): ``seed``
        when given, else 0: the measuring instrument is the same network in every run, so that
        the runs' metrics compare (its samples still follow the run's seed)."""
        return 0 if self.seed is None else self.seed

    def draw_seed(self, trainer: pl.Trainer) -> int:
        """The seed of this callback's draws: ``seed`` when given, else the run's
        (:func:`~sclc_lightning.seeding.evaluation_seed`)."""
        return evaluation_seed(self.seed, trainer)

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> dict[str, float]:
        """The metrics of ``generation``."""
        raise NotImplementedError

    def labels_to_ask(self, trainer: pl.Trainer, labels: Tensor | None) -> Tensor | None:
        """The conditions of an evaluation draw: the held-out ``labels`` repeated to
        ``num_samples`` when the loop samples with conditions, else ``None``.

        Raises:
            ValueError: the loop is conditional and the held-out split has no labels.
        """
        loop = find_loop(trainer)
        if loop is None or not loop.conditional:
            return None
        if labels is None:
            raise ValueError(
                f"{type(self).__name__}: the loop samples the model with conditions, but the held-out split"
                " has no labels to ask for; give the test items (data, label) tuples."
            )
        return conditions_for(labels, self.num_samples)

    def draw(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        generation: int,
        conditions: Tensor | None = None,
        sample_kwargs: dict[str, Any] | None = None,
    ) -> Tensor:
        """``num_samples`` samples, shared out over the ranks (:func:`sample_across_ranks`), from
        the loop's sampler (with ``sample_kwargs`` instead of the loop's sampling settings when
        given); a conditional loop's model is asked for ``conditions``, as the loop asks it (a
        ``ValueError`` without them)."""
        return sample_across_ranks(
            trainer,
            pl_module,
            self.num_samples,
            seed=self.draw_seed(trainer),
            stream=generation,
            batch_size=self.batch_size,
            conditions=conditions,
            desc=f"Evaluating generation {generation}",
            sample_kwargs=sample_kwargs,
        )

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        generation = current_generation(trainer)
        if generation % self.every:
            return
        start = time.perf_counter()
        metrics = self.evaluate(trainer, pl_module, generation)
        metrics["time_evaluating_s"] = time.perf_counter() - start
        pl_module.log_dict(metrics, on_step=False, on_epoch=True)
        used = getattr(self, "evaluated_on", None) or self.num_samples  # an evaluator may use fewer
        # the headline metric, else the first one (a subclass need not name one)
        quoted = self.headline if self.headline in metrics else next(iter(metrics))
        shown = "" if quoted == "time_evaluating_s" else f" ({quoted} {metrics[quoted]:.4g})"
        rank_zero_info(
            f"{type(self).__name__}: generation {generation} evaluated on {used} samples in"
            f" {metrics['time_evaluating_s']:.1f} s{shown}."
        )
