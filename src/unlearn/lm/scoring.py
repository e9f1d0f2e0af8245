"""Log-likelihood of a completion given a prompt: the one computation LM methods and audits share.

Every LM loss (GA, NPO, SimNPO, ...) and most LM audits (answer probability, truth ratio,
Min-K%++) are functions of the per-token log-probabilities of a completion (an answer, a
continuation) after a prompt (a question, a prefix). The prompt and the completion are tokenised
separately and concatenated, so the completion's tokens are the same whatever the prompt, and the
prompt's positions carry the label -100 (ignored), as `transformers` does for its own losses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from unlearn.errors import UnlearnInputError

IGNORE = -100  # the label `transformers` ignores in its losses


def pad_id(tokenizer) -> int:
    """The padding id; a causal LM tokenizer without one pads with its end-of-text token."""
    pid = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pid is None:
        raise UnlearnInputError("the tokenizer has neither a pad token nor an end-of-text token")
    return pid


def encode_pairs(tokenizer, prompts: Sequence[str], completions: Sequence[str],
                 max_length: int | None = None) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and labels (completion tokens only) for a batch, right-padded.

    A completion is scored with a leading space unless it has one or the prompt ends in
    whitespace, so that "Q: ... A:" + "Paris" is tokenised as running text. `max_length` cuts
    the prompt from the left, never the completion.
    """
    if len(prompts) != len(completions):
        raise UnlearnInputError(f"{len(prompts)} prompts but {len(completions)} completions")
    rows, labels = [], []
    for prompt, completion in zip(prompts, completions):
        if prompt and not prompt[-1].isspace() and completion and not completion[0].isspace():
            completion = " " + completion
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
        c = tokenizer(completion, add_special_tokens=False)["input_ids"]
        if not c:
            raise UnlearnInputError(f"empty completion after prompt {prompt[:40]!r}")
        if max_length is not None and len(p) + len(c) > max_length:
            p = p[max(0, len(p) + len(c) - max_length):]
        rows.append(p + c)
        labels.append([IGNORE] * len(p) + c)
    width = max(len(r) for r in rows)
    pid = pad_id(tokenizer)
    input_ids = torch.full((len(rows), width), pid, dtype=torch.long)
    label_ids = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, lab) in enumerate(zip(rows, labels)):
        input_ids[i, : len(r)] = torch.tensor(r)
        label_ids[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(r)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": label_ids}


def encode_texts(tokenizer, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    """input_ids and attention_mask of plain texts, right-padded, no special tokens: what the
    activation readers (probes, ROME's key statistics) feed the model."""
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id(tokenizer), dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for i, r in enumerate(rows):
        input_ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def token_logprobs(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p of each label token, mask of scored positions), both [B, T-1]; differentiable.

    Position t scores token t+1 (the usual shift of a causal LM).
    """
    device = next(model.parameters()).device
    logits = model(input_ids=batch["input_ids"].to(device),
                   attention_mask=batch["attention_mask"].to(device)).logits[:, :-1].float()
    targets = batch["labels"][:, 1:].to(device)
    scored = targets != IGNORE
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return logp * scored, scored


def sequence_nll(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed negative log-likelihood of each completion, its token count), both [B]; differentiable."""
    logp, scored = token_logprobs(model, batch)
    return -logp.sum(dim=1), scored.sum(dim=1)


def mean_token_nll(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The mean NLL over every completion token of the batch: the `transformers` LM loss."""
    nll, count = sequence_nll(model, batch)
    return nll.sum() / count.sum().clamp(min=1)


@torch.no_grad()
def completion_logprob(model, tokenizer, prompts: Sequence[str], completions: Sequence[str],
                       batch_size: int = 64, max_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(completion | prompt) summed over its tokens, token count) for every pair, on the CPU.

    The model is put in eval mode for the call and restored after, so audits never change it.
    """
    was_training = model.training
    model.eval()
    try:
        sums, counts = [], []
        for start in range(0, len(prompts), batch_size):
            batch = encode_pairs(tokenizer, prompts[start:start + batch_size],
                                 completions[start:start + batch_size], max_length)
            nll, count = sequence_nll(model, batch)
            sums.append(-nll.cpu())
            counts.append(count.cpu())
        return torch.cat(sums), torch.cat(counts)
    finally:
        model.train(was_training)
