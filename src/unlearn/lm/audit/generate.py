"""Greedy continuations of prompts, in batches: what the answer and memorisation audits read.

Exact-answer accuracy, TOFU's ROUGE and MUSE's VerbMem and KnowMem all compare what a model
*says* (greedy decoding, as TOFU, MUSE and OpenUnlearning evaluate) with a reference text. Prompts
are left-padded so that every row continues from the same position; `transformers` derives the
position ids from the attention mask, so a row's continuation does not depend on its batch
neighbours. Greedy decoding is prefix-consistent: the first n tokens of a longer greedy
continuation are the n-token continuation, so one call serves both exact match (the first
|answer| tokens) and ROUGE (the whole continuation).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from unlearn.errors import UnlearnInputError
from unlearn.lm.scoring import pad_id


@contextmanager
def eval_mode(model) -> Iterator[None]:
    """The model in eval mode for an audit, restored after: audits never change a model."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def context_length(model) -> int | None:
    """The most positions the model takes (GPT-2's n_positions, Llama's max_position_embeddings)."""
    return getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)


@torch.no_grad()
def greedy_continuations(model, tokenizer, prompts: Sequence[str] | Sequence[Sequence[int]],
                         max_new_tokens: int | Sequence[int], batch_size: int = 64) -> list[list[int]]:
    """The greedy continuation of each prompt, as token ids: at most its budget, cut before end-of-text.

    A prompt is a string or its token ids (a text's first tokens, exactly as the text was
    tokenised). `max_new_tokens` is one budget for all or one per prompt. A prompt longer than the
    model's context (less the budget) keeps its last tokens.
    """
    budgets = [int(max_new_tokens)] * len(prompts) if isinstance(max_new_tokens, int) else list(map(int, max_new_tokens))
    if len(budgets) != len(prompts):
        raise UnlearnInputError(f"{len(prompts)} prompts but {len(budgets)} token budgets")
    if any(len(p) == 0 for p in prompts):
        raise UnlearnInputError("greedy generation needs a non-empty prompt")
    pid, eos = pad_id(tokenizer), tokenizer.eos_token_id
    device = next(model.parameters()).device
    limit = context_length(model)
    out: list[list[int]] = []
    with eval_mode(model):
        for start in range(0, len(prompts), batch_size):
            rows = [tokenizer(p, add_special_tokens=False)["input_ids"] if isinstance(p, str) else list(p)
                    for p in prompts[start:start + batch_size]]
            budget = max(1, max(budgets[start:start + batch_size]))
            if limit is not None:
                rows = [r[max(0, len(r) - (limit - budget)):] for r in rows]
            width = max(len(r) for r in rows)
            input_ids = torch.full((len(rows), width), pid, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):  # left padding: every row ends where generation begins
                input_ids[i, width - len(r):] = torch.tensor(r)
                mask[i, width - len(r):] = 1
            generated = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                       max_new_tokens=budget, do_sample=False, pad_token_id=pid,
                                       eos_token_id=eos)[:, width:].tolist()
            for row, own_budget in zip(generated, budgets[start:start + batch_size]):
                row = row[:own_budget]
                out.append(row[:row.index(eos)] if eos is not None and eos in row else row)
    return out
