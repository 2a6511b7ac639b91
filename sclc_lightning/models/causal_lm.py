r"""A causal language model (Hugging Face ``transformers``) that continues prompts, for the
language-model collapse experiments (Shumailov et al. 2024: OPT-125m fine-tuned on its own
wikitext-2 continuations; Gerstgrasser et al. 2024: transformers pretrained on their own stories).

Items are ``{"prompt": (P,), "continuation": (C,)}`` token blocks
(:mod:`sclc_lightning.datasets.text`). Training is next-token prediction on the whole block;
:meth:`CausalLM.sample` continues the given prompts by ancestral sampling (``generate`` with
``do_sample``, temperature 1, no top-k by default) to exactly ``C`` new tokens.

Either ``pretrained`` names a model on disk or in the local Hugging Face cache (it is never
downloaded at run time unless ``local_files_only=False``), or ``config`` gives the architecture
of a randomly initialised model (``model_type`` plus that config class's arguments).
Needs the ``text`` extra: ``pip install "sclc-lightning[text]"``.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from sclc_lightning._checks import COUNT, NON_NEGATIVE, POSITIVE, check_arguments, plain_numbers
from sclc_lightning._extras import require
from sclc_lightning._trainer import attached_datamodule
from sclc_lightning.mixing.weighting import split_weights, weighted_mean
from sclc_lightning.models._sampling import check_temperature

__all__ = ["CausalLM"]


def _transformers() -> Any:
    return require("transformers", "text", "CausalLM")


@plain_numbers
class CausalLM(pl.LightningModule):
    """A ``transformers`` causal LM as a LightningModule with ``sample`` and ``score_items``.

    Args:
        pretrained: a model name or folder for ``AutoModelForCausalLM.from_pretrained`` (e.g.
            ``facebook/opt-125m`` in the local cache), or ``None``.
        config: with ``pretrained=None``, the architecture: ``{"model_type": "opt", ...}`` with
            the arguments of that model's config class (``vocab_size``, ``hidden_size``, ...).
        local_files_only: never download weights (the default).
        lr: AdamW's learning rate.
        weight_decay: AdamW's weight decay.
        temperature: sampling temperature (Gerstgrasser et al.: 1.0).
        top_k: sample among the ``top_k`` likeliest tokens; 0 for the full distribution.
        num_beams: beam search width when greater than 1 (Shumailov et al. also report 5-way
            beam search); sampling otherwise.
        pad_token_id: the id used for padding (never generated: blocks are fixed-length).
    """

    #: Reads each item's weight (:mod:`~sclc_lightning.mixing.weighting`): a weighted loss.
    reads_item_weights = True

    def __init__(
        self,
        pretrained: str | None = None,
        config: dict[str, Any] | None = None,
        local_files_only: bool = True,
        lr: float = 5e-5,
        weight_decay: float = 0.0,
        temperature: float = 1.0,
        top_k: int = 0,
        num_beams: int = 1,
        pad_token_id: int = 0,
    ) -> None:
        super().__init__()
        check_arguments(
            CausalLM.__init__,
            locals(),
            lr=POSITIVE,
            weight_decay=NON_NEGATIVE,
            temperature=POSITIVE,
            top_k=NON_NEGATIVE,
            num_beams=COUNT,
            pad_token_id=NON_NEGATIVE,
        )
        if (pretrained is None) == (config is None):
            raise ValueError("Give exactly one of `pretrained` (a model to load) and `config` (an architecture).")
        if temperature <= 0 or top_k < 0 or num_beams < 1:
            raise ValueError(
                f"Need temperature > 0, top_k >= 0, num_beams >= 1; got {temperature}, {top_k}, {num_beams}."
            )
        self.save_hyperparameters()
        transformers = _transformers()
        if pretrained is not None:
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                pretrained, local_files_only=local_files_only
            )
        else:
            assert config is not None
            settings = dict(config)
            model_type = settings.pop("model_type", None)
            if model_type is None:
                raise ValueError("`config` needs a `model_type` (e.g. 'opt', 'gpt2', 'llama').")
            architecture = transformers.AutoConfig.for_model(model_type, **settings)
            self.model = transformers.AutoModelForCausalLM.from_config(architecture)
        self.lr, self.weight_decay = lr, weight_decay
        self.temperature, self.top_k, self.num_beams, self.pad_token_id = temperature, top_k, num_beams, pad_token_id

    @staticmethod
    def _blocks(batch: Any) -> tuple[Tensor, Tensor]:
        if not isinstance(batch, dict) or "prompt" not in batch or "continuation" not in batch:
            raise TypeError("CausalLM trains on {'prompt': ..., 'continuation': ...} token blocks.")
        return batch["prompt"].long(), batch["continuation"].long()

    def token_nll(self, prompt: Tensor, continuation: Tensor) -> Tensor:
        """Negative log-likelihood (nats) of every predicted token of ``[prompt; continuation]``,
        shape ``(N, P + C - 1)``."""
        ids = torch.cat([prompt, continuation], dim=1).to(self.device)
        logits = self.model(input_ids=ids).logits[:, :-1].float()
        return F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        batch, weights = split_weights(batch)
        loss = weighted_mean(self.token_nll(*self._blocks(batch)), weights)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    @torch.no_grad()
    def score_items(self, batch: Any, batch_idx: int = 0) -> dict[str, Tensor]:
        """Per held-out block: ``cross_entropy`` (mean nats per predicted token), ``perplexity``
        (its exponential, Shumailov et al.'s PP) and ``continuation_cross_entropy`` (the
        continuation's tokens only, given the prompt)."""
        prompt, continuation = self._blocks(batch)
        nll = self.token_nll(prompt, continuation)
        mean = nll.mean(1)
        return {
            "cross_entropy": mean,
            "perplexity": mean.exp(),
            "continuation_cross_entropy": nll[:, prompt.shape[1] - 1 :].mean(1),
        }

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        conditions: Any = None,
        temperature: float | None = None,
    ) -> Tensor:
        """Continuations of the ``num_samples`` prompts in ``conditions`` (``(N, P)`` ids), each of
        as many tokens as the model was trained to continue (``continuation_length``, read from
        the DataModule, else ``P``), shape ``(N, C)`` int64.

        ``generate`` draws from the global generator: it is seeded from ``generator`` inside a
        forked random state, so the draw is repeatable and leaves the caller's state alone.
        ``temperature`` :math:`\tau` divides the logits before sampling (``None``: the model's own
        ``temperature``, 1.0 by default).
        """
        tau = self.temperature if temperature is None else check_temperature(temperature, type(self).__name__)
        if not isinstance(conditions, Tensor) or conditions.shape[0] != num_samples:
            raise ValueError("CausalLM.sample needs the prompts as `conditions` (loop `condition_field: prompt`).")
        prompts = conditions.long().to(self.device)
        new_tokens = self._continuation_length(prompts.shape[1])
        seed = int(torch.randint(2**62, (1,), generator=generator)) if generator is not None else None
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if seed is not None:
                torch.manual_seed(seed)
            output = self.model.generate(
                input_ids=prompts,
                attention_mask=torch.ones_like(prompts),
                do_sample=self.num_beams == 1,
                num_beams=self.num_beams,
                temperature=tau if self.num_beams == 1 else None,
                top_k=self.top_k if self.num_beams == 1 else None,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=self.pad_token_id,
            )
        return output[:, prompts.shape[1] :].long()

    def _continuation_length(self, prompt_length: int) -> int:
        datamodule = attached_datamodule(self)
        length = getattr(datamodule, "continuation_length", None)
        return int(length) if isinstance(length, int) and length > 0 else prompt_length
