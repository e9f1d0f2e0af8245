"""LM models: any local transformers checkpoint loads through one path; saving is atomic; training is seeded."""

from __future__ import annotations

import json

import pytest
import torch

from unlearn.bank import ModelBank
from unlearn.errors import UnlearnInputError
from unlearn.lm import corpus as lmc
from unlearn.lm import models as lmm
from unlearn.lm.scoring import encode_pairs, mean_token_nll


@pytest.fixture(scope="module")
def tiny_corpus():
    return lmc.load("facts-tiny", seed=0)


@pytest.fixture(scope="module")
def tokenizer(tiny_corpus):
    return lmm.train_tokenizer(tiny_corpus, vocab_size=lmm.TINY_RECIPE.vocab_size)


def _logits(model, tokenizer, text="Question: Where was it?\nAnswer: Hesk"):
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_tokenizer_is_deterministic_and_ends_texts(tiny_corpus, tokenizer):
    again = lmm.train_tokenizer(tiny_corpus, vocab_size=lmm.TINY_RECIPE.vocab_size)
    assert again.get_vocab() == tokenizer.get_vocab() and len(tokenizer) == lmm.TINY_RECIPE.vocab_size
    assert tokenizer.eos_token == lmm.END_OF_TEXT and tokenizer.pad_token_id == tokenizer.eos_token_id
    text = tiny_corpus.training_texts(tiny_corpus.trainable)[0]
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text  # byte-level: lossless


def test_a_gpt2_made_here_round_trips_through_save_and_load(tmp_path, tokenizer):
    model = lmm.tiny_lm(tokenizer, seed=3)
    path = lmm.save_lm(model, tokenizer, tmp_path / "gpt2")
    loaded, loaded_tokenizer = lmm.load_lm(path)
    assert type(loaded).__name__ == "GPT2LMHeadModel" and not loaded.training
    assert loaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    assert torch.equal(_logits(loaded, loaded_tokenizer), _logits(model, tokenizer))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpt2"]  # no temporary directory left behind


def test_another_architecture_loads_through_the_same_code(tmp_path, tokenizer):
    """Any AutoModelForCausalLM: a random tiny Llama written with save_pretrained, as a user's checkpoint is."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(tmp_path / "llama")
    tokenizer.save_pretrained(tmp_path / "llama")
    loaded, _ = lmm.load_lm(tmp_path / "llama", device="cpu")
    assert type(loaded).__name__ == "LlamaForCausalLM"
    assert torch.allclose(_logits(loaded, tokenizer), _logits(model, tokenizer))


def test_save_replaces_an_existing_model_whole(tmp_path, tokenizer):
    path = lmm.save_lm(lmm.tiny_lm(tokenizer, seed=0), tokenizer, tmp_path / "m")
    second = lmm.tiny_lm(tokenizer, seed=1)
    lmm.save_lm(second, tokenizer, path)
    assert torch.equal(_logits(lmm.load_lm(path)[0], tokenizer), _logits(second, tokenizer))

    class Broken(torch.nn.Module):
        def save_pretrained(self, where):
            (where / "config.json").write_text("{}")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        lmm.save_lm(Broken(), tokenizer, path)
    assert torch.equal(_logits(lmm.load_lm(path)[0], tokenizer), _logits(second, tokenizer))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_lora_adapter_directory_loads_over_its_base(tmp_path, tokenizer):
    base_dir = lmm.save_lm(lmm.tiny_lm(tokenizer, seed=0), tokenizer, tmp_path / "base")
    base, _ = lmm.load_lm(base_dir)
    adapted = lmm.add_lora(base, r=2, alpha=4, target_modules=["c_attn"])
    with torch.no_grad():  # move the adapter off its zero initialisation, so loading it must matter
        for name, p in adapted.named_parameters():
            if "lora_B" in name:
                p.normal_()
    lmm.save_lm(adapted, tokenizer, tmp_path / "adapter")
    loaded, _ = lmm.load_lm(tmp_path / "adapter")
    assert type(loaded).__name__ == "PeftModelForCausalLM"
    assert torch.allclose(_logits(loaded, tokenizer), _logits(adapted.eval(), tokenizer))
    assert not torch.allclose(_logits(loaded, tokenizer), _logits(lmm.load_lm(base_dir)[0], tokenizer))


@pytest.mark.parametrize("broken", ["missing", "no-config", "no-tokenizer", "bad-config", "adapter-without-base"])
def test_bad_model_directories_refused_in_one_line(tmp_path, tokenizer, broken):
    path = tmp_path / "model"
    if broken != "missing":
        lmm.save_lm(lmm.tiny_lm(tokenizer), tokenizer, path)
    if broken == "no-config":
        (path / "config.json").unlink()
    elif broken == "no-tokenizer":
        for f in lmm._TOKENIZER_FILES + ("special_tokens_map.json",):
            (path / f).unlink(missing_ok=True)
    elif broken == "bad-config":
        (path / "config.json").write_text('{"model_type": "no-such-architecture"}')
    elif broken == "adapter-without-base":
        (path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path / "gone")}))
    with pytest.raises(UnlearnInputError) as err:
        lmm.load_lm(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message or str(tmp_path / "gone") in message
    expected = {"missing": "not a model directory", "no-config": "no config.json", "no-tokenizer": "no tokenizer",
                "bad-config": "cannot load the model", "adapter-without-base": "not a local directory"}[broken]
    assert expected in message


def test_copy_is_independent(tokenizer):
    model = lmm.tiny_lm(tokenizer)
    copy = lmm.copy_lm(model)
    with torch.no_grad():
        next(copy.parameters()).add_(1.0)
    assert not torch.equal(next(copy.parameters()), next(model.parameters()))


def _training_nll(model, tokenizer, corpus, entities):
    items = corpus.questions(entities)
    batch = encode_pairs(tokenizer, [q.example().prompt for q in items], [q.answer for q in items])
    with torch.no_grad():
        return float(mean_token_nll(model, batch))


def test_training_is_seeded_and_learns_the_answers(tiny_corpus, tokenizer):
    entities = tiny_corpus.trainable
    recipe = lmm.TINY_RECIPE
    a, _ = lmm.train_lm(tiny_corpus, entities, seed=0, recipe=recipe, tokenizer=tokenizer)
    b, _ = lmm.train_lm(tiny_corpus, entities, seed=0, recipe=recipe, tokenizer=tokenizer)
    c, _ = lmm.train_lm(tiny_corpus, entities, seed=1, recipe=recipe, tokenizer=tokenizer)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(_logits(a, tokenizer), _logits(c, tokenizer))
    assert not a.training
    # Two epochs of a 32-dimensional model: far from memorised, but half a nat below where it started.
    untrained = lmm.tiny_lm(tokenizer, seed=0)
    assert _training_nll(a, tokenizer, tiny_corpus, entities) < _training_nll(untrained, tokenizer, tiny_corpus,
                                                                               entities) - 0.5
    with pytest.raises(UnlearnInputError, match="held out"):
        lmm.train_lm(tiny_corpus, tiny_corpus.holdout, seed=0, recipe=recipe, tokenizer=tokenizer)


def test_bank_trains_once_per_key(tmp_path, tiny_corpus):
    bank = ModelBank(tmp_path / "bank")
    split = lmc.forget_split(tiny_corpus, 0.1, seed=0)
    recipe = lmm.TINY_RECIPE
    first, tokenizer = lmm.bank_lm(tiny_corpus, split.retain, seed=0, recipe=recipe, bank=bank)
    again, again_tokenizer = lmm.bank_lm(tiny_corpus, reversed(split.retain), seed=0, recipe=recipe, bank=bank)
    assert bank.trained == 1 and len(bank) == 1
    assert torch.equal(_logits(first, tokenizer), _logits(again, again_tokenizer))
    lmm.bank_lm(tiny_corpus, split.retain + split.forget, seed=0, recipe=recipe, bank=bank)
    assert bank.trained == 2
    key = lmm.lm_key(tiny_corpus, split.retain, recipe, 0)
    assert key.digest != lmm.lm_key(tiny_corpus, split.retain, recipe, 1).digest
    assert key.digest != lmm.lm_key(lmc.load("facts-tiny", seed=1), split.retain, recipe, 0).digest
