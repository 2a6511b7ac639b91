r"""Text as fixed token blocks, for language models trained on their own text.

Shumailov et al. (2024) split wikitext-2 into 64-token prompts, each followed by a 64-token
continuation; a generation's synthetic data are the model's continuations of the real prompts.
Items here are dicts of two int64 tensors, ``{"prompt": (P,), "continuation": (C,)}``: the loop
generates ``continuation`` (``data_field: continuation``) for the real ``prompt``
(``condition_field: prompt``). Fixed-length blocks need no padding masks and store as plain
tensors (the choice of the source paper).

:class:`GrammarTextDataModule` makes the text offline from a known stochastic grammar (a sparse
first-order Markov chain over a small vocabulary, a regular grammar), so that the true
likelihood of any text, real or generated, is known exactly: :meth:`MarkovGrammar.log_prob`.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from sclc_lightning._checks import COUNT, NON_NEGATIVE, Range, check_arguments, plain_numbers
from sclc_lightning._extras import require
from sclc_lightning.seeding import datamodule_seed

__all__ = ["GrammarTextDataModule", "MarkovGrammar", "TextBlocks", "TokenizedTextDataModule", "distinct_n"]

#: ids reserved by the grammar's vocabulary (content tokens start after them)
PAD, BOS, EOS = 0, 1, 2
SPECIAL = 3
_TOKENIZED = "TokenizedTextDataModule (a Hugging Face tokenizer and dataset)"


class MarkovGrammar:
    r"""A sparse first-order Markov chain over ``vocab`` content tokens (ids ``3 .. vocab + 2``).

    Each token has ``branching`` successors, drawn at random from the seed, with Zipf weights
    :math:`\propto 1/k^{s}`; the first token of a text follows the chain's stationary
    distribution.

    Args:
        vocab: content tokens.
        branching: successors of each token.
        zipf: the exponent :math:`s`.
        seed: draws the successors.
    """

    def __init__(self, vocab: int = 64, branching: int = 4, zipf: float = 1.0, seed: int = 0) -> None:
        check_arguments(MarkovGrammar.__init__, locals(), vocab=Range(minimum=2), branching=COUNT, seed=NON_NEGATIVE)
        if vocab < 2 or not 1 <= branching <= vocab or zipf < 0:
            raise ValueError(f"Need vocab >= 2, 1 <= branching <= vocab, zipf >= 0; got {vocab}, {branching}, {zipf}.")
        self.vocab, self.branching, self.zipf, self.seed = vocab, branching, zipf, seed
        generator = torch.Generator().manual_seed(int(seed))
        weights = 1.0 / torch.arange(1, branching + 1, dtype=torch.float64) ** zipf
        weights = weights / weights.sum()
        self.transition = torch.zeros(vocab, vocab, dtype=torch.float64)
        for token in range(vocab):
            successors = torch.randperm(vocab, generator=generator)[:branching]
            self.transition[token, successors] = weights
        # stationary distribution: the left eigenvector of eigenvalue 1, by power iteration
        start = torch.full((vocab,), 1.0 / vocab, dtype=torch.float64)
        for _ in range(2000):
            start = 0.5 * start + 0.5 * start @ self.transition  # lazy chain: converges if periodic
        self.start = start / start.sum()

    @property
    def vocab_size(self) -> int:
        """Ids a model needs: the special ones and the content tokens."""
        return self.vocab + SPECIAL

    def entropy_rate(self) -> float:
        """Nats per token of the chain at stationarity: the best cross-entropy a model can reach
        on long texts (``exp`` of it: the best perplexity)."""
        rows = self.transition.clamp_min(1e-300)
        per_state = -(self.transition * rows.log()).sum(1)
        return float((self.start * per_state).sum())

    def sample(self, num: int, length: int, generator: torch.Generator | None = None) -> Tensor:
        """``num`` texts of ``length`` tokens, shape ``(num, length)``, int64 ids."""
        tokens = torch.empty(num, length, dtype=torch.int64)
        state = torch.multinomial(self.start, num, replacement=True, generator=generator)
        tokens[:, 0] = state
        for position in range(1, length):
            state = torch.multinomial(self.transition[state], 1, generator=generator)[:, 0]
            tokens[:, position] = state
        return tokens + SPECIAL

    def token_log_probs(self, tokens: Tensor, given: Tensor | None = None) -> Tensor:
        """Each token's log-probability (nats) given the text before it, shape ``(N, L)``; with
        ``given`` (``(N, P)``, the prompts) ``tokens`` continue them. A token the grammar cannot
        produce there (or an id outside the content tokens) gets ``-inf``."""
        text = tokens if given is None else torch.cat([given[:, -1:], tokens], dim=1)
        states = text.long() - SPECIAL
        valid = (states >= 0) & (states < self.vocab)
        states = states.clamp(0, self.vocab - 1)
        steps = self.transition[states[:, :-1], states[:, 1:]].log()
        if given is None:
            steps = torch.cat([self.start[states[:, :1]].log(), steps], dim=1)
            ok = valid
        else:
            ok = valid[:, 1:] & valid[:, :1]
        return torch.where(ok, steps, torch.full_like(steps, -math.inf))

    def log_prob(self, tokens: Tensor, given: Tensor | None = None) -> Tensor:
        """Each text's log-probability (nats), shape ``(N,)``; with ``given`` (``(N, P)``, the
        prompts), of ``tokens`` as their continuation. Ids outside the content tokens have
        probability 0 (``-inf``)."""
        return self.token_log_probs(tokens, given).sum(1)


class TextBlocks(Dataset[dict[str, Tensor]]):
    """Fixed-length token blocks as ``{"prompt": (P,), "continuation": (C,)}`` items.

    With ``prompt_length=0`` every prompt is the single ``bos`` token and the whole block is the
    continuation: texts generated from scratch (Gerstgrasser et al.'s stories).
    """

    def __init__(self, tokens: Tensor, prompt_length: int, bos: int = BOS) -> None:
        if tokens.dim() != 2 or not 0 <= prompt_length < tokens.shape[1]:
            raise ValueError(
                f"Need (N, L) tokens and 0 <= prompt_length < L; got {tuple(tokens.shape)}, {prompt_length}."
            )
        self.tokens, self.prompt_length = tokens.long(), prompt_length
        self._bos = torch.tensor([bos], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        row = self.tokens[index]
        if self.prompt_length == 0:
            return {"prompt": self._bos, "continuation": row}
        return {"prompt": row[: self.prompt_length], "continuation": row[self.prompt_length :]}


class _BlocksDataModule(pl.LightningDataModule):
    """Loaders over ``train_blocks`` and ``test_blocks``, which ``setup`` makes."""

    batch_size: int
    train_blocks: TextBlocks | None
    test_blocks: TextBlocks | None

    def train_dataloader(self) -> DataLoader[Any]:
        assert self.train_blocks is not None
        return DataLoader(self.train_blocks, batch_size=self.batch_size, shuffle=True)

    def test_dataloader(self) -> DataLoader[Any]:
        assert self.test_blocks is not None
        return DataLoader(self.test_blocks, batch_size=self.batch_size)


@plain_numbers
class GrammarTextDataModule(_BlocksDataModule):
    """Texts of a :class:`MarkovGrammar`, as prompt/continuation blocks (offline, seconds).

    Args:
        vocab: content tokens of the grammar.
        branching: successors of each token.
        zipf: the exponent of the successors' Zipf weights.
        prompt_length: tokens of each prompt (Shumailov et al.: 64); ``0`` for texts generated
            from the ``BOS`` token alone (pretraining on stories, Gerstgrasser et al.).
        continuation_length: tokens of each continuation (64).
        n: real training blocks.
        n_test: held-out blocks.
        batch_size: training batch size.
        seed: draws the grammar and the texts (different streams); ``None`` (default) takes the
            run's seed (:func:`~sclc_lightning.seeding.datamodule_seed`) when the grammar is first
            used or the data are set up, so that seeds average over grammars and texts.
    """

    def __init__(
        self,
        vocab: int = 64,
        branching: int = 4,
        zipf: float = 1.0,
        prompt_length: int = 64,
        continuation_length: int = 64,
        n: int = 512,
        n_test: int = 256,
        batch_size: int = 32,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_arguments(
            GrammarTextDataModule.__init__,
            locals(),
            vocab=Range(minimum=2),
            branching=COUNT,
            zipf=NON_NEGATIVE,
            prompt_length=NON_NEGATIVE,
            continuation_length=COUNT,
            n=COUNT,
            n_test=COUNT,
            batch_size=COUNT,
            seed=NON_NEGATIVE,
        )
        if n < 1 or n_test < 1 or batch_size < 1 or prompt_length < 0 or continuation_length < 1:
            raise ValueError("n, n_test, batch_size and continuation_length must be >= 1, prompt_length >= 0.")
        if not 1 <= branching <= vocab:
            raise ValueError(f"Need 1 <= branching <= vocab; got {branching} and {vocab}.")
        self._grammar_settings = (vocab, branching, zipf)
        self._grammar: MarkovGrammar | None = None
        self.prompt_length, self.continuation_length = prompt_length, continuation_length
        self.n, self.n_test, self.batch_size, self.seed = n, n_test, batch_size, seed
        self.train_blocks: TextBlocks | None = None
        self.test_blocks: TextBlocks | None = None

    @property
    def grammar(self) -> MarkovGrammar:
        """The grammar the texts follow, drawn from the data seed when first used."""
        if self._grammar is None:
            self._grammar = MarkovGrammar(*self._grammar_settings, seed=datamodule_seed(self))
        return self._grammar

    @property
    def vocab_size(self) -> int:
        return self._grammar_settings[0] + SPECIAL

    def setup(self, stage: str) -> None:
        if self.train_blocks is None:
            length = self.prompt_length + self.continuation_length
            seed = datamodule_seed(self)
            train = self.grammar.sample(self.n, length, torch.Generator().manual_seed(seed + 1))
            test = self.grammar.sample(self.n_test, length, torch.Generator().manual_seed(seed + 1_000_003))
            self.train_blocks = TextBlocks(train, self.prompt_length)
            self.test_blocks = TextBlocks(test, self.prompt_length)

    def token_log_probs(self, continuation: Tensor, prompt: Tensor) -> Tensor:
        """True log-probability of each continuation token given the text before it (a
        ``BOS``-only prompt: the continuation is the whole text), shape ``(N, C)``."""
        if prompt.shape[1] == 1 and bool((prompt == BOS).all()):
            return self.grammar.token_log_probs(continuation)
        return self.grammar.token_log_probs(continuation, prompt)

    def log_prob(self, continuation: Tensor, prompt: Tensor) -> Tensor:
        """True log-probability of each continuation given its prompt, shape ``(N,)``."""
        return self.token_log_probs(continuation, prompt).sum(1)


def distinct_n(texts: Tensor, n: int) -> float:
    """Share of distinct n-grams among all n-grams of ``texts`` ``(N, L)`` (Li et al. 2016's
    distinct-n): lower when generated text repeats itself.

    Examples:
        >>> distinct_n(torch.tensor([[1, 2, 1, 2], [1, 2, 3, 4]]), 2)
        0.6666666666666666
    """
    if texts.shape[1] < n:
        return 0.0
    grams = texts.unfold(1, n, 1).reshape(-1, n)
    return len({tuple(g) for g in grams.tolist()}) / len(grams)


@plain_numbers
class TokenizedTextDataModule(_BlocksDataModule):
    """Real text, tokenized and cut into prompt/continuation blocks: wikitext-2 for Shumailov et
    al.'s experiment, TinyStories for Gerstgrasser et al.'s, or your own text files.

    The texts of a split are joined (each followed by the tokenizer's end-of-text token, when it
    has one), tokenized, and cut into consecutive blocks of ``prompt_length +
    continuation_length`` tokens (the remainder is dropped), as Shumailov et al. cut wikitext-2.
    Nothing is downloaded unless you allow it: the tokenizer is loaded with
    ``local_files_only``, and ``datasets`` reads its cache (set ``HF_DATASETS_OFFLINE=1`` on a
    machine without network). Needs the ``text`` extra.

    Args:
        tokenizer: a name or folder for ``AutoTokenizer.from_pretrained`` (``facebook/opt-125m``).
        dataset: the ``datasets.load_dataset`` path: ``wikitext``, ``roneneldan/TinyStories``,
            or ``text`` with ``data_files``.
        name: the dataset's configuration (``wikitext-2-raw-v1``).
        data_files: files for the ``text``/``json`` builders, e.g. ``{"train": ..., "test": ...}``.
        train_split: the split of the real training data.
        test_split: the held-out split (``validation`` for TinyStories).
        text_field: the column holding the text.
        prompt_length: tokens of each prompt (0: texts from the start token).
        continuation_length: tokens of each continuation.
        max_blocks: keep at most this many training blocks (``None``: all).
        max_test_blocks: the same for the held-out split.
        batch_size: training batch size.
        local_files_only: never download the tokenizer.
    """

    def __init__(
        self,
        tokenizer: str,
        dataset: str = "wikitext",
        name: str | None = "wikitext-2-raw-v1",
        data_files: dict[str, str] | None = None,
        train_split: str = "train",
        test_split: str = "test",
        text_field: str = "text",
        prompt_length: int = 64,
        continuation_length: int = 64,
        max_blocks: int | None = None,
        max_test_blocks: int | None = None,
        batch_size: int = 8,
        local_files_only: bool = True,
    ) -> None:
        super().__init__()
        check_arguments(
            TokenizedTextDataModule.__init__,
            locals(),
            prompt_length=NON_NEGATIVE,
            continuation_length=COUNT,
            max_blocks=COUNT,
            max_test_blocks=COUNT,
            batch_size=COUNT,
        )
        if prompt_length < 0 or continuation_length < 1 or batch_size < 1:
            raise ValueError("Need prompt_length >= 0, continuation_length >= 1 and batch_size >= 1.")
        self.tokenizer_name, self.dataset, self.name, self.data_files = tokenizer, dataset, name, data_files
        self.train_split, self.test_split, self.text_field = train_split, test_split, text_field
        self.prompt_length, self.continuation_length = prompt_length, continuation_length
        self.max_blocks, self.max_test_blocks = max_blocks, max_test_blocks
        self.batch_size, self.local_files_only = batch_size, local_files_only
        self.train_blocks: TextBlocks | None = None
        self.test_blocks: TextBlocks | None = None
        self._tokenizer: Any = None
        require("transformers", "text", _TOKENIZED)
        require("datasets", "text", _TOKENIZED)

    @property
    def tokenizer(self) -> Any:
        """The ``transformers`` tokenizer."""
        if self._tokenizer is None:
            transformers = require("transformers", "text", _TOKENIZED)
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(
                self.tokenizer_name, local_files_only=self.local_files_only
            )
        return self._tokenizer

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def _blocks(self, split: str, limit: int | None) -> TextBlocks:
        datasets = require("datasets", "text", _TOKENIZED)
        texts = datasets.load_dataset(self.dataset, self.name, data_files=self.data_files, split=split)[self.text_field]
        tokenizer = self.tokenizer
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        ids: list[int] = []
        for text in texts:
            if text.strip():
                ids += tokenizer(text, add_special_tokens=False)["input_ids"] + eos
        length = self.prompt_length + self.continuation_length
        count = len(ids) // length if limit is None else min(limit, len(ids) // length)
        if count == 0:
            raise ValueError(
                f"Split {split!r} of {self.dataset!r} has {len(ids)} tokens: fewer than one block of {length}."
            )
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else BOS
        return TextBlocks(torch.tensor(ids[: count * length]).reshape(count, length), self.prompt_length, bos)

    def setup(self, stage: str) -> None:
        if self.train_blocks is None:
            self.train_blocks = self._blocks(self.train_split, self.max_blocks)
            self.test_blocks = self._blocks(self.test_split, self.max_test_blocks)
