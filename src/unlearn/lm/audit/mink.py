"""Min-K%++ (Zhang, Sun, ..., 2024, "Min-K%++: improved baseline for detecting pre-training data").

For each token x_t of a text, with the model's next-token distribution p(·|x_<t):

    z_t = (log p(x_t|x_<t) − μ_t) / σ_t,   μ_t = E_{v~p}[log p(v)],   σ_t² = E_{v~p}[(log p(v))²] − μ_t²

i.e. how far the token's log-probability lies above what the model expects at that position: a
training text sits at a local maximum of the likelihood, where the actual token beats the
model's own average. The text's score is the mean of its k% lowest z_t (the first token, which
has no context, is not scored; at least one token counts); higher = "member". This follows the
authors' code (github.com/zjysteven/mink-plus-plus). k: the authors sweep 10-100%; we default to
20%, Min-K%'s (Shi et al. 2024) recommended share; OpenUnlearning's configs use 40%.

One deviation: σ_t is floored at 1e-6, so that a position where the model is certain of its own
distribution (σ_t = 0: all mass on one token, or uniform) scores 0 instead of 0/0.

`mia_auc` is the attack: ROC AUC of forget texts (members, positive) against held-out texts of the
same kind (non-members), in percent with DeLong's interval, as every MIA of `unlearn.audit`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from unlearn.audit.scores import roc_summary
from unlearn.errors import UnlearnInputError
from unlearn.lm.audit.generate import context_length, eval_mode
from unlearn.lm.scoring import IGNORE, encode_pairs

K = 0.2
MIN_SIGMA = 1e-6


def min_k_plus_plus(model, tokenizer, texts: Sequence[str], k: float = K, batch_size: int = 32) -> np.ndarray:
    """Min-K%++ score of each text (higher = more likely a training text)."""
    if not 0 < k <= 1:
        raise UnlearnInputError(f"Min-K%++'s k is a share of the tokens in (0, 1], got {k}")
    if len(texts) == 0:
        raise UnlearnInputError("no texts for Min-K%++")
    device = next(model.parameters()).device
    limit = context_length(model)
    scores = []
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start:start + batch_size])
            batch = encode_pairs(tokenizer, [""] * len(chunk), chunk)
            if limit is not None:  # a text longer than the context is read up to the context
                batch = {key: value[:, :limit] for key, value in batch.items()}
            logits = model(input_ids=batch["input_ids"].to(device),
                           attention_mask=batch["attention_mask"].to(device)).logits[:, :-1].double()
            log_p = torch.log_softmax(logits, dim=-1)
            targets = batch["labels"][:, 1:].to(device)
            scored = targets != IGNORE
            token = log_p.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            p = log_p.exp()
            mu = (p * log_p).sum(-1)
            sigma = ((p * log_p.square()).sum(-1) - mu.square()).clamp(min=0).sqrt().clamp(min=MIN_SIGMA)
            z = ((token - mu) / sigma).masked_fill(~scored, float("inf"))  # unscored positions sort last
            n = scored.sum(1)
            if (n == 0).any():
                raise UnlearnInputError("Min-K%++ needs texts of at least two tokens")
            keep = (n.double() * k).floor().clamp(min=1).long()
            lowest = z.sort(dim=1).values
            chosen = torch.arange(lowest.shape[1], device=device).unsqueeze(0) < keep.unsqueeze(1)
            scores.append((torch.where(chosen, lowest, 0.0).sum(1) / keep).cpu())
    return torch.cat(scores).numpy()


def mia_auc(model, tokenizer, members: Sequence[str], nonmembers: Sequence[str], k: float = K,
            batch_size: int = 32) -> dict[str, float | None]:
    """Min-K%++ ROC AUC of members (forget texts) against non-members (held-out texts), in percent."""
    return roc_summary(min_k_plus_plus(model, tokenizer, members, k, batch_size),
                       min_k_plus_plus(model, tokenizer, nonmembers, k, batch_size))
