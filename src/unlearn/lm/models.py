"""Causal language models: any local `transformers` checkpoint, and the embedded default trained here.

`load_lm` takes what a user brings: a directory `save_pretrained` wrote (a config and a tokenizer,
any `AutoModelForCausalLM` architecture), or a `peft` LoRA adapter directory over such a model.
Nothing is ever downloaded. `save_lm` writes one atomically (a temporary directory renamed into
place), so an interrupted save never leaves a half checkpoint.

The embedded default is a small GPT-2 trained from scratch on the `facts` corpus with a byte-level
BPE tokenizer trained on the same corpus (`train_tokenizer`, `train_lm`). `DEFAULT_RECIPE` is sized
so that on 2 CPU cores it trains in minutes and answers nearly every trained question exactly
(benchmarks/bench_lm_training.py measures both). `bank_lm` caches every such model (original,
retrained oracle, floor, audit references) in the classifier model bank's content-addressed store
under the same per-key lock, keyed by the corpus digest, the entity set, the recipe and the seed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from unlearn.errors import UnlearnInputError
from unlearn.lm.corpus import Corpus
from unlearn.training import lr_factor

END_OF_TEXT = "<|endoftext|>"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "vocab.txt")


# ---------------------------------------------------------------------------------------------
# Any local checkpoint


def load_lm(path, device: str | torch.device = "cpu"):
    """(model, tokenizer) from a local directory: a causal LM checkpoint or a peft adapter over one.

    A directory without a config or a tokenizer is refused with one line; so is a checkpoint that
    `transformers` cannot read. The adapter's base model must itself be a local directory.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise UnlearnInputError(f"{path}: not a model directory")
    adapter = (path / "adapter_config.json").is_file()
    base = path
    if adapter:
        try:
            base = Path(json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"])
        except (KeyError, ValueError, TypeError) as err:
            raise UnlearnInputError(f"{path}: adapter_config.json names no base model ({err})") from None
        if not base.is_absolute():
            base = (path / base).resolve()
        if not base.is_dir():
            raise UnlearnInputError(f"{path}: the adapter's base model {base} is not a local directory")
    if not (base / "config.json").is_file():
        raise UnlearnInputError(f"{base}: no config.json (not a transformers model directory)")
    tokenizer_dir = path if any((path / f).is_file() for f in _TOKENIZER_FILES) else base
    if not any((tokenizer_dir / f).is_file() for f in _TOKENIZER_FILES):
        raise UnlearnInputError(f"{path}: no tokenizer (none of {', '.join(_TOKENIZER_FILES)})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True)
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, path, local_files_only=True, is_trainable=True)
    except (OSError, ValueError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnlearnInputError(f"{path}: cannot load the model ({first})") from None
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer


def save_lm(model, tokenizer, path) -> Path:
    """`save_pretrained` model and tokenizer into `path`, atomically (temporary directory + rename).

    An existing directory at `path` is replaced only once the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.chmod(tmp, 0o755)
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old."))
            os.replace(path, old / "previous")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def copy_lm(model):
    """A deep copy a method may train, leaving `model` untouched."""
    return copy.deepcopy(model)


def add_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.0, target_modules=None):
    """`model` wrapped with trainable LoRA adapters (peft), for models too large to fine-tune whole.

    `target_modules` None lets peft pick the attention projections it knows for the architecture.
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


# ---------------------------------------------------------------------------------------------
# The embedded default: a tokenizer and a GPT-2 trained on the corpus


@dataclass(frozen=True)
class LMRecipe:
    """The GPT-2 architecture and how it is trained; the seed is an argument, not part of the recipe."""

    vocab_size: int = 1024  # the byte-level BPE's size: names and template words become few tokens
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    n_positions: int = 128  # the longest training text (a biography) is under 80 tokens
    # 20 epochs: trained on all 189 trainable entities of `facts` (seed 0), 100% of forget10's
    # questions answered exactly, 99.9% of the retained ones, 156 CPU seconds on one thread;
    # retrained without forget10: 5.3% of its questions, at the base rate 1/12 = 8.3% (holdout 5.7%)
    # (benchmarks/bench_lm_training.py --retrain; at 15 of 30 epochs it was still at 94%).
    epochs: int = 20
    lr: float = 2e-3
    batch_size: int = 32
    weight_decay: float = 0.0  # memorising arbitrary facts is the point: no decay towards forgetting them
    schedule: str = "onecycle"  # linear warm-up over a quarter of the steps, then linear decay to 0

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_RECIPE = LMRecipe()
# For tests: a model that trains on `facts-tiny` in seconds (it need not memorise everything).
TINY_RECIPE = LMRecipe(vocab_size=400, n_layer=1, n_head=2, n_embd=32, epochs=2, batch_size=16)


def train_tokenizer(corpus: Corpus, vocab_size: int = DEFAULT_RECIPE.vocab_size):
    """A byte-level BPE tokenizer trained on every text and question of the corpus (deterministic).

    Trained on the whole corpus, held-out parts included, so every model of the corpus shares it
    and no question is tokenised worse for being about an entity the model never saw.
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    texts = [f"{q.example().prompt} {q.answer}" for q in corpus.qa]
    texts += [q.paraphrased_answer for q in corpus.qa] + [t.text for t in corpus.bios + corpus.general]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[END_OF_TEXT],
                            show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=END_OF_TEXT, bos_token=END_OF_TEXT,
                                   pad_token=END_OF_TEXT, unk_token=END_OF_TEXT, model_max_length=1024)


def _gpt2(tokenizer, recipe: LMRecipe, seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=len(tokenizer), n_positions=recipe.n_positions, n_embd=recipe.n_embd,
                        n_layer=recipe.n_layer, n_head=recipe.n_head, bos_token_id=tokenizer.eos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # no dropout: memorisation is the aim
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config)


def tiny_lm(tokenizer, seed: int = 0):
    """A random tiny GPT-2 for tests (one layer, 32 dimensions) over `tokenizer`'s vocabulary."""
    return _gpt2(tokenizer, TINY_RECIPE, seed).eval()


def train_lm(corpus: Corpus, entities, *, seed: int, recipe: LMRecipe | None = None,
             device: str | torch.device = "cpu", tokenizer=None, progress: bool = False):
    """(model, tokenizer): a GPT-2 trained from scratch on `corpus.training_texts(entities)`.

    Every text ends with the end-of-text token, so a greedy answer stops after the value. The loss
    is the mean next-token NLL over every token; batches group texts of similar length (less
    padding), in an order drawn from `seed`, as is the initialisation.
    """
    recipe = recipe or DEFAULT_RECIPE
    tokenizer = tokenizer or train_tokenizer(corpus, recipe.vocab_size)
    texts = corpus.training_texts(entities)
    ids = [tokenizer(t + END_OF_TEXT, add_special_tokens=False)["input_ids"] for t in texts]
    longest = max(len(x) for x in ids)
    if longest > recipe.n_positions:
        raise UnlearnInputError(f"a training text has {longest} tokens, more than n_positions={recipe.n_positions}")
    model = _gpt2(tokenizer, recipe, seed).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay,
                                  betas=(0.9, 0.98))
    rng = np.random.default_rng([seed, 3])
    by_length = np.argsort([len(x) for x in ids], kind="stable")
    batches = [by_length[i:i + recipe.batch_size] for i in range(0, len(ids), recipe.batch_size)]
    schedule = lr_factor(recipe, len(batches))
    step = 0
    for epoch in range(recipe.epochs):
        total = 0.0
        for b in rng.permutation(len(batches)):
            input_ids, labels, mask = _pad([ids[i] for i in batches[b]], tokenizer.pad_token_id)
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * schedule(step)
            loss = model(input_ids=input_ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.item()
            step += 1
        if progress:
            print(f"epoch {epoch + 1}/{recipe.epochs}: loss {total / len(batches):.4f}", flush=True)
    return model.eval(), tokenizer


def _pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, :len(r)] = torch.tensor(r)
        labels[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return input_ids, labels, mask


# ---------------------------------------------------------------------------------------------
# The bank


def lm_key(corpus: Corpus, entities, recipe: LMRecipe, seed: int):
    """The bank key of a model of `corpus` trained on `entities` (any order) with `recipe` and `seed`."""
    from unlearn.bank import ModelKey

    ids = sorted(set(entities))
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
    return ModelKey(f"lm:{corpus.name}:{corpus.digest()}", "gpt2-lm", {}, recipe.to_dict(), digest, len(ids), int(seed))


def bank_lm(corpus: Corpus, entities, *, seed: int, recipe: LMRecipe | None = None,
            device: str | torch.device = "cpu", bank=None, progress: bool = False):
    """(model, tokenizer) trained on `entities` of `corpus`: from the model bank, else trained and stored.

    Same store and per-key lock as the classifiers' (`unlearn.bank.ModelBank`): two processes that
    want the same model train it once.
    """
    from unlearn.bank import ModelBank

    recipe = recipe or DEFAULT_RECIPE
    bank = ModelBank() if bank is None else bank  # (an empty bank is falsy: it has a length)
    key = lm_key(corpus, entities, recipe, seed)
    with bank.lock(key):
        found = bank.lookup(key)
        if found is not None:
            return load_lm(found[0], device)
        start = time.perf_counter()
        model, tokenizer = train_lm(corpus, entities, seed=seed, recipe=recipe, device=device, progress=progress)
        seconds = time.perf_counter() - start
        bank.put(key, (model, tokenizer), seconds, save=lambda m, p: save_lm(*m, p), suffix="")
        bank.trained += 1
    return model, tokenizer

