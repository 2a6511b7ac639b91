"""A callback that evaluates a language model's generated text after every generation."""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from sclc_lightning._checks import plain_numbers
from sclc_lightning.datasets.text import distinct_n
from sclc_lightning.metrics.evaluator import GenerationEvaluator

__all__ = ["TextMetrics"]


@plain_numbers
class TextMetrics(GenerationEvaluator):
    """Continue the first ``num_samples`` held-out prompts after each generation and log:

    - ``distinct_1``, ``distinct_2``, ``distinct_4``: the share of distinct n-grams among the
      continuations' n-grams (lower: the model repeats itself);
    - when the DataModule knows the true likelihood (``token_log_probs``, the grammar corpus):
      ``generated_invalid``, the share of generated tokens the language cannot produce where they
      stand, and ``generated_nll``, the true negative log-likelihood of the other tokens in nats
      per token (both higher: the model writes text the language would not; Shumailov et al.
      show the generated text's perplexities drifting);
    - ``time_evaluating_s``.

    The draw is seeded by (seed, generation) and spread over the DDP ranks.

    Args:
        num_samples: continuations per evaluation (the held-out prompts, repeated if fewer).
        every: evaluate every ``every`` generations (and always at generation 0).
        batch_size: prompts per ``sample`` call.
        seed: seed of the evaluation draws; `None` (default) takes the run's seed (the loop's).

    Examples:
        >>> from sclc_lightning.callbacks import TextMetrics
        >>> metrics = TextMetrics(num_samples=256)
    """

    headline = "distinct_2"

    def __init__(self, num_samples: int = 256, every: int = 1, batch_size: int = 256, seed: int | None = None) -> None:
        super().__init__(num_samples, every, batch_size, seed)

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, generation: int) -> dict[str, float]:
        datamodule = getattr(trainer, "datamodule", None)
        blocks = getattr(datamodule, "test_blocks", None)
        if blocks is None:
            raise ValueError("TextMetrics needs a text DataModule with held-out blocks (`test_blocks`).")
        index = torch.arange(self.num_samples) % len(blocks)
        prompts = torch.stack([blocks[int(i)]["prompt"] for i in index])
        texts = self.draw(trainer, pl_module, generation, conditions=prompts)
        values = {f"distinct_{n}": distinct_n(texts, n) for n in (1, 2, 4)}
        true_log_probs = getattr(datamodule, "token_log_probs", None)
        if callable(true_log_probs):
            per_token = true_log_probs(texts, prompts)
            possible = torch.isfinite(per_token)
            values["generated_invalid"] = float(1 - possible.double().mean())
            values["generated_nll"] = float(-per_token[possible].mean()) if possible.any() else float("inf")
        return values
