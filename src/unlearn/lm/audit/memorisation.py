"""MUSE's memorisation audits (Shi, Lee, Huang, Malladi, ..., Zhang, 2024): VerbMem and KnowMem.

- **VerbMem**: prompt the model with the first l tokens of a forget text and compare its greedy
  continuation with the text's true continuation by ROUGE-L F1. MUSE uses l = 32 and a
  128-token continuation; our texts are short biographies, so the prefix is
  min(l, half the text) tokens and the continuation the rest of the text (at most 128 tokens),
  generated to the true continuation's length.
- **KnowMem**: ROUGE-L F1 between the model's answer to a question (greedy, cut at a new line or
  the next "Question:", MUSE's stop words) and the true answer.

Both are means over texts (questions) in percent, as MUSE reports them. ROUGE-L comes from
Google's `rouge-score` package without stemming (MUSE's setting); TOFU's model utility uses its
recall *with* stemming (TOFU's setting), hence the `stem` flag.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rouge_score import rouge_scorer

from unlearn.errors import UnlearnInputError
from unlearn.lm.audit.answers import AnswerSet, answer_set
from unlearn.lm.audit.generate import greedy_continuations
from unlearn.lm.examples import LMExample

PREFIX_TOKENS = 32          # MUSE's prompt length l
CONTINUATION_TOKENS = 128   # MUSE's ground-truth (and generation) length


def rouge_l(references: Sequence[str], predictions: Sequence[str], *, stem: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(ROUGE-L recall, ROUGE-L F1) of each prediction against its reference, in [0, 1]."""
    if len(references) != len(predictions):
        raise UnlearnInputError(f"{len(references)} references but {len(predictions)} predictions")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stem)
    scores = [scorer.score(reference, prediction)["rougeL"] for reference, prediction in zip(references, predictions)]
    return np.array([s.recall for s in scores]), np.array([s.fmeasure for s in scores])


def verbatim_memorisation(model, tokenizer, texts: Sequence[str], prefix_tokens: int = PREFIX_TOKENS,
                          max_new_tokens: int = CONTINUATION_TOKENS, batch_size: int = 64) -> float:
    """MUSE's VerbMem on `texts`: mean ROUGE-L F1 (percent) of continuations of their prefixes."""
    if len(texts) == 0:
        raise UnlearnInputError("no texts for verbatim memorisation")
    if prefix_tokens < 1 or max_new_tokens < 1:
        raise UnlearnInputError(f"prefix and continuation need at least one token, got {prefix_tokens}, {max_new_tokens}")
    prefixes, truths = [], []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) < 2:
            raise UnlearnInputError(f"text {text[:40]!r} is too short to split into a prefix and a continuation")
        cut = min(prefix_tokens, len(ids) // 2)
        prefixes.append(ids[:cut])
        truths.append(ids[cut:cut + max_new_tokens])
    lengths = [len(t) for t in truths]
    generated = greedy_continuations(model, tokenizer, prefixes, lengths, batch_size)
    decode = lambda rows: tokenizer.batch_decode(rows, skip_special_tokens=True)  # noqa: E731
    return 100.0 * float(rouge_l(decode(truths), decode(generated))[1].mean())


def knowmem_score(answers: AnswerSet) -> float:
    """MUSE's KnowMem from a computed answer set: mean ROUGE-L F1 in percent."""
    return 100.0 * float(rouge_l(answers.references, answers.answers)[1].mean())


def knowledge_memorisation(model, tokenizer, examples: Sequence[LMExample], batch_size: int = 64) -> float:
    """MUSE's KnowMem on question/answer examples: mean ROUGE-L F1 (percent) of the greedy answers."""
    return knowmem_score(answer_set(model, tokenizer, examples, batch_size))
