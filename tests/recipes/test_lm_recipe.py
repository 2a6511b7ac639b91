"""Language models on their own text (Shumailov et al. 2024): the grammar corpus and its exact
likelihood, the causal LM's sampling and scores, and the lm_finetune recipe through ``sclc fit``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sclc_lightning.cli import main
from sclc_lightning.data.text import GrammarTextDataModule, MarkovGrammar, distinct_n
from sclc_lightning.models import CausalLM

RECIPES = Path(__file__).parents[2] / "recipes"


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
    args = [
        "fit",
        "--config",
        str(RECIPES / "lm_finetune.yaml"),
        "--config",
        str(RECIPES / "small" / "lm_finetune.yaml"),
    ]
    assert main([*args, "--run_dir", str(tmp_path)]) == 0
    with open(tmp_path / "metrics.csv", newline="") as handle:
        rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
    assert [int(r["generation"]) for r in rows] == [0, 1, 2]
    assert [r["num_synthetic"] for r in rows] == [0, 256, 256] and rows[1]["num_real"] == 0
    grammar = GrammarTextDataModule(n=256, prompt_length=32, continuation_length=32)
    best = math.exp(grammar.grammar.entropy_rate())  # 3.46: no model does better on long texts
    assert best < rows[0]["test_perplexity"] < 2 * best  # generation 0 learnt the grammar well
    assert rows[2]["test_perplexity"] > rows[0]["test_perplexity"] * 1.05  # the sources' direction
    assert rows[2]["tail_share"] > rows[0]["tail_share"]
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


def test_pretraining_on_its_own_stories_replace_rises_more_than_accumulate(tmp_path: Path) -> None:
    args = [
        "fit",
        "--config",
        str(RECIPES / "lm_pretrain.yaml"),
        "--config",
        str(RECIPES / "small" / "lm_pretrain.yaml"),
    ]
    final = {}
    for mode in ("replace", "accumulate"):
        assert main([*args, "--run_dir", str(tmp_path / mode), "--loop.mode", mode]) == 0
        with open(tmp_path / mode / "metrics.csv", newline="") as handle:
            rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
        assert [int(r["generation"]) for r in rows] == [0, 1, 2]
        assert (tmp_path / mode / "synthetic" / "initial_state.safetensors").exists()  # a new model each generation
        final[mode] = rows[2]["test_cross_entropy"] - rows[0]["test_cross_entropy"]
    assert final["replace"] > 0.1 and final["replace"] > 2 * final["accumulate"]
