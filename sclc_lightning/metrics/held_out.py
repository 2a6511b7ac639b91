"""Scores of the model on the held-out real data after every generation (a VAE's negative ELBO, a
language model's per-sequence perplexity), with a measure of the distribution's tail."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from typing_extensions import override

from sclc_lightning._checks import COUNT, Range, bounded, check_arguments, plain_numbers
from sclc_lightning._trainer import current_generation, eval_mode

__all__ = ["HeldOutScores"]


@plain_numbers
class HeldOutScores(Callback):
    """After every ``every`` generations (always at generation 0), score every item of the
    DataModule's test split with the module's ``score_items(batch, batch_idx)``, which returns a
    dict of per-item tensors, and log ``test_<name>`` (the mean of each) and
    ``time_evaluating_s``.

    With ``tail``, it also logs ``tail_share``: the share of held-out items whose ``tail`` score
    is above the 95th percentile (``quantile``) of generation 0's scores (Shumailov et al. 2024's
    long tail of perplexities). The reference is kept in checkpoints.

    Every rank scores the whole test split (it is small next to training); the values agree.

    Args:
        every: evaluate every ``every`` generations.
        tail: the score whose tail is measured (e.g. ``"nelbo"``, ``"perplexity"``), or ``None``.
        quantile: the reference quantile of generation 0's scores.

    Examples:
        >>> from sclc_lightning.callbacks import HeldOutScores
        >>> scores = HeldOutScores(every=1, tail="nll")  # and `tail_share` of the `nll` scores
    """

    ranges = bounded(every=COUNT, quantile=Range(above=0, maximum=0.999999))

    def __init__(self, every: int = 1, tail: str | None = None, quantile: float = 0.95) -> None:
        check_arguments(HeldOutScores, locals())
        if every < 1 or not 0 < quantile < 1:
            raise ValueError(f"`every` must be >= 1 and `quantile` in (0, 1), got {every} and {quantile}.")
        self.every, self.tail, self.quantile = every, tail, quantile
        self.reference: float | None = None

    def scores(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Tensor]:
        """Every held-out item's scores, concatenated over the test loader."""
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "test_dataloader"):
            raise ValueError("HeldOutScores needs a DataModule with a `test_dataloader` (held-out data).")
        score = getattr(pl_module, "score_items", None)
        if not callable(score):
            raise TypeError(f"HeldOutScores needs {type(pl_module).__name__}.score_items(batch, batch_idx).")
        parts: dict[str, list[Tensor]] = {}
        with eval_mode(pl_module, trainer):
            for index, batch in enumerate(datamodule.test_dataloader()):
                for name, values in score(batch, index).items():
                    parts.setdefault(name, []).append(values.detach().double().cpu())
        return {name: torch.cat(values) for name, values in parts.items()}

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        generation = current_generation(trainer)
        if generation % self.every and generation != 0:
            return
        start = time.perf_counter()
        scores = self.scores(trainer, pl_module)
        metrics = {f"test_{name}": float(values.mean()) for name, values in scores.items()}
        if self.tail is not None:
            if self.tail not in scores:
                raise KeyError(f"HeldOutScores(tail={self.tail!r}): score_items gives {sorted(scores)}.")
            if self.reference is None:
                self.reference = float(torch.quantile(scores[self.tail], self.quantile))
            metrics["tail_share"] = float((scores[self.tail] > self.reference).double().mean())
        metrics["time_evaluating_s"] = time.perf_counter() - start
        pl_module.log_dict(metrics, on_step=False, on_epoch=True)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "time_evaluating_s")
        rank_zero_info(f"HeldOutScores: generation {generation}: {shown}.")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"reference": self.reference}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.reference = state_dict.get("reference")
