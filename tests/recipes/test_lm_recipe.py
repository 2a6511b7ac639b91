"""Language models on their own text (Shumailov et al. 2024): the grammar corpus and its exact
likelihood, the causal LM's sampling and scores, and the lm_finetune recipe through ``sclc fit``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import metrics_rows
from safetensors.torch import load_file

from sclc_lightning.cli import main
from sclc_lightning.datasets.text import GrammarTextDataModule, MarkovGrammar, distinct_n
from sclc_lightning.models import CausalLM

RECIPES = Path(__file__).parents[2] / "recipes"


def _small(recipe: str) -> list[str]:
    """``sclc fit`` arguments of a recipe with its small layer."""
    return ["fit", "--config", str(RECIPES / f"{recipe}.yaml"), "--config", str(RECIPES / "small" / f"{recipe}.yaml")]


def test_the_grammar_knows_the_likelihood_of_any_text() -> None:
    grammar = MarkovGrammar(vocab=16, branching=3, seed=1)
    texts = grammar.sample(4000, 40, torch.Generator().manual_seed(0))
    assert texts.min() >= 3 and texts.max() < grammar.vocab_size
    assert torch.allclose(grammar.transition.sum(1), torch.ones(16, dtype=torch.float64))
    # the empirical nats per token approach the entropy rate (the first token costs a little more)
    empirical = float(-grammar.log_prob(texts).sum() / texts.numel())
    assert abs(empirical - grammar.entropy_rate()) < 0.05
    whole, prompt, rest = (
        grammar.log_prob(texts),
        grammar.log_prob(texts[:, :10]),
        grammar.log_prob(texts[:, 10:], texts[:, :10]),
    )
    assert torch.allclose(whole, prompt + rest)  # chain rule
    per_token = grammar.token_log_probs(texts[:, 10:], texts[:, :10])
    assert per_token.shape == (4000, 30) and torch.allclose(per_token.sum(1), rest)
    broken = texts[:2].clone()
    broken[:, 5] = 0  # a padding id inside a text: impossible
    assert torch.isinf(grammar.log_prob(broken)).all()
    assert distinct_n(torch.tensor([[5, 5, 5, 5]]), 1) == 0.25 and distinct_n(texts[:, :2], 3) == 0.0


def _tiny(**kwargs: object) -> CausalLM:
    config = {"model_type": "opt", "vocab_size": 19, "hidden_size": 16, "word_embed_proj_dim": 16, "ffn_dim": 32}
    config.update(num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=64, pad_token_id=0)
    return CausalLM(config=config, **kwargs)  # type: ignore[arg-type]


def test_the_model_continues_prompts_repeatably_and_scores_blocks() -> None:
    torch.manual_seed(0)
    model = _tiny()
    prompts = torch.randint(3, 19, (5, 8))
    state = torch.get_rng_state()
    first = model.sample(5, generator=torch.Generator().manual_seed(3), conditions=prompts)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is left alone
    again = model.sample(5, generator=torch.Generator().manual_seed(3), conditions=prompts)
    assert first.shape == (5, 8) and first.dtype == torch.int64 and torch.equal(first, again)
    scores = model.score_items({"prompt": prompts, "continuation": first})
    assert set(scores) == {"cross_entropy", "perplexity", "continuation_cross_entropy"}
    assert torch.allclose(scores["perplexity"], scores["cross_entropy"].exp())
    # an untrained model is near uniform over its 19 ids
    assert abs(float(scores["cross_entropy"].mean()) - math.log(19)) < 0.5
    with pytest.raises(ValueError, match="needs the prompts as `conditions`"):
        model.sample(2)
    with pytest.raises(ValueError, match="exactly one of `pretrained`"):
        CausalLM()
    with pytest.raises(ValueError, match="needs a `model_type`"):
        CausalLM(config={"vocab_size": 10})


def test_finetuning_on_its_own_text_raises_the_held_out_perplexity(tmp_path: Path) -> None:
    args = _small("lm_finetune")
    assert main([*args, "--run_dir", str(tmp_path)]) == 0
    rows = metrics_rows(tmp_path)
    assert [int(r["generation"]) for r in rows] == [0, 1, 2]
    assert [r["num_synthetic"] for r in rows] == [0, 256, 256] and rows[1]["num_real"] == 0
    grammar = GrammarTextDataModule(n=256, prompt_length=32, continuation_length=32)
    best = math.exp(grammar.grammar.entropy_rate())  # 3.46: no model does better on long texts
    assert best < rows[0]["test_perplexity"] < 2 * best  # generation 0 learnt the grammar well
    assert rows[2]["test_perplexity"] > rows[0]["test_perplexity"] * 1.05  # the sources' direction
    assert rows[2]["tail_share"] > rows[0]["tail_share"]
    for row in rows:  # TextMetrics on the continuations of held-out prompts
        assert 0 < row["distinct_1"] <= row["distinct_2"] <= row["distinct_4"] <= 1
        assert 0 <= row["generated_invalid"] < 0.5 and best / 3 < math.exp(row["generated_nll"]) < 3 * best
    stored = load_file(str(next((tmp_path / "synthetic").glob("gen_0001/*.safetensors"))))
    assert stored["data"].dtype == torch.int64 and stored["data"].shape == (256, 32)
    assert stored["data"].min() >= 0 and stored["data"].max() < grammar.vocab_size


def test_stories_from_the_start_token_and_their_likelihood() -> None:
    data = GrammarTextDataModule(prompt_length=0, continuation_length=20, n=8, n_test=4)
    data.setup("fit")
    assert data.train_blocks is not None
    item = data.train_blocks[0]
    assert item["prompt"].tolist() == [1] and item["continuation"].shape == (20,)
    texts = torch.stack([data.train_blocks[i]["continuation"] for i in range(8)])
    prompts = torch.ones(8, 1, dtype=torch.int64)
    assert torch.allclose(data.log_prob(texts, prompts), data.grammar.log_prob(texts))


@pytest.mark.slow  # 52 s; by default test_finetuning_on_its_own_text_raises_the_held_out_perplexity
def test_pretraining_on_its_own_stories_replace_rises_more_than_accumulate(tmp_path: Path) -> None:
    args = _small("lm_pretrain")
    final = {}
    for mode in ("replace", "accumulate"):
        assert main([*args, "--run_dir", str(tmp_path / mode), "--loop.mode", mode]) == 0
        rows = metrics_rows(tmp_path / mode)
        assert [int(r["generation"]) for r in rows] == [0, 1, 2]
        assert (tmp_path / mode / "synthetic" / "initial_state.safetensors").exists()  # a new model each generation
        final[mode] = rows[2]["test_cross_entropy"] - rows[0]["test_cross_entropy"]
    assert final["replace"] > 0.1 and final["replace"] > 2 * final["accumulate"]


def _word_tokenizer(folder: Path, corpus: list[str]) -> str:
    """A word-level tokenizer trained here on ``corpus`` and saved as a transformers tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    special = ["<pad>", "<s>", "</s>", "<unk>"]
    tokenizer.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=special))
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    wrapped.save_pretrained(str(folder))
    return str(folder)


def test_real_text_files_become_blocks_and_a_model_continues_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    words = [f"w{i}" for i in range(30)]
    generator = torch.Generator().manual_seed(0)
    lines = [" ".join(words[j] for j in torch.randint(30, (12,), generator=generator).tolist()) for _ in range(200)]
    (tmp_path / "train.txt").write_text("\n".join(lines[:150]) + "\n\n")
    (tmp_path / "test.txt").write_text("\n".join(lines[150:]))
    tokenizer = _word_tokenizer(tmp_path / "tok", lines)
    from sclc_lightning.datasets.text import TokenizedTextDataModule

    files = {"train": str(tmp_path / "train.txt"), "test": str(tmp_path / "test.txt")}
    data = TokenizedTextDataModule(tokenizer, "text", None, files, prompt_length=8, continuation_length=8)
    data.setup("fit")
    assert data.train_blocks is not None and data.test_blocks is not None
    # 150 lines of 12 words and an end-of-text token each: 1,950 tokens, 121 blocks of 16
    assert len(data.train_blocks) == 1950 // 16 and len(data.test_blocks) == 650 // 16
    item = data.train_blocks[0]
    eos = data.tokenizer.eos_token_id
    assert item["prompt"].shape == (8,) and item["continuation"].shape == (8,)
    encode = data.tokenizer
    joined = [t for line in lines[:2] for t in encode(line, add_special_tokens=False)["input_ids"] + [eos]]
    assert torch.cat([item["prompt"], item["continuation"]]).tolist() == joined[:16]  # lines joined, then cut
    config = {"model_type": "gpt2", "vocab_size": data.vocab_size, "n_embd": 16, "n_layer": 1, "n_head": 2}
    model = CausalLM(config={**config, "n_positions": 32})
    continuation = model.sample(3, generator=torch.Generator().manual_seed(0), conditions=item["prompt"].repeat(3, 1))
    assert continuation.shape == (3, 8) and int(continuation.max()) < data.vocab_size
    stories = TokenizedTextDataModule(tokenizer, "text", None, files, prompt_length=0, continuation_length=16)
    stories.setup("fit")
    assert stories.train_blocks is not None and stories.train_blocks[0]["prompt"].tolist() == [
        data.tokenizer.bos_token_id
    ]


@pytest.mark.parametrize(
    ("base", "layer", "expected"),
    [
        ("lm_finetune", "lm_finetune_opt125m", "pretrained: facebook/opt-125m"),
        ("lm_pretrain", "lm_pretrain_tinystories", "dataset: roneneldan/TinyStories"),
    ],
)
def test_paper_size_layers_resolve(base: str, layer: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "fit",
        "--config",
        str(RECIPES / f"{base}.yaml"),
        "--config",
        str(RECIPES / f"{layer}.yaml"),
        "--print_config",
    ]
    try:
        code = main(args)
    except SystemExit as done:
        code = done.code  # type: ignore[assignment]
    printed = capsys.readouterr().out
    assert code in (0, None) and expected in printed and "TokenizedTextDataModule" in printed
    assert "vocab: 64" not in printed  # the grammar's settings do not leak into the real-text module


@pytest.mark.slow
def test_two_processes_share_out_the_prompts(tmp_path: Path) -> None:
    """ddp_spawn over two CPU processes: every real prompt is continued once, by one of the ranks,
    and each stored continuation keeps the prompt it continues."""
    import os

    import lightning.pytorch as pl
    from lightning.fabric.plugins.environments.lightning import find_free_network_port

    from sclc_lightning import SelfConsumingLoop

    os.environ["MASTER_PORT"] = str(find_free_network_port())
    data = GrammarTextDataModule(vocab=16, n=32, n_test=8, prompt_length=8, continuation_length=8, batch_size=4, seed=0)
    loop = SelfConsumingLoop(
        1.0, 1, images_per_generation=32, mode="replace", output_dir=tmp_path / "s",
        data_field="continuation", condition_field="prompt", sample_batch_size=5,
    )  # fmt: skip
    trainer = pl.Trainer(
        default_root_dir=str(tmp_path), accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=-1,
        callbacks=[loop], logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(_tiny(), datamodule=data)
    stored = load_file(str(tmp_path / "s" / "gen_0001" / "shard_00000.safetensors"))
    data.setup("fit")
    assert data.train_blocks is not None
    prompts = torch.stack([data.train_blocks[i]["prompt"] for i in range(32)])
    assert stored["data"].shape == (32, 8) and stored["source_index"].sort().values.tolist() == list(range(32))
    assert torch.equal(stored["field.prompt"], prompts[stored["source_index"]])
