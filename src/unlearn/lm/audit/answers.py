"""What a model answers to a set of questions: exact-answer accuracy and answer probability.

- **Exact-answer accuracy**: the greedy continuation of the question prompt, as many tokens long
  as the reference answer, equals the answer after normalising both (lower case, no punctuation,
  no articles "a", "an", "the", single spaces: SQuAD v1.1's answer normalisation, Rajpurkar et al.
  2016). A fact is known or not; on the embedded corpus a model that never saw an entity scores
  the corpus's base rate. In percent.
- **Answer probability** (TOFU, Maini et al. 2024, "Probability"): P(a | q)^{1/|a|}, the
  length-normalised likelihood of the answer given the question, exp(−mean token NLL).

`answer_set` computes everything the QA audits need from one scoring pass and one generation
pass (the generation also serves TOFU's ROUGE and MUSE's KnowMem, `unlearn.lm.audit.memorisation`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from unlearn.errors import UnlearnInputError
from unlearn.lm.audit.generate import greedy_continuations
from unlearn.lm.examples import LMExample
from unlearn.lm.scoring import completion_logprob

# Tokens generated beyond the reference answer's length, for the free-form answer ROUGE reads
# (MUSE's KnowMem generates up to 32 tokens and stops at a new line or the next question).
EXTRA_ANSWER_TOKENS = 8
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_STOP = re.compile(r"\n|Question:")  # where a free-form answer ends (MUSE's stop words)


def normalise(text: str) -> str:
    """SQuAD's answer normalisation: lower case, punctuation and articles removed, spaces collapsed."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


@dataclass(frozen=True)
class AnswerSet:
    """Per question: answer probability, exact match, and the model's free-form answer."""
    probability: np.ndarray   # P(a|q)^(1/|a|)
    correct: np.ndarray       # exact match after normalising (bool)
    answers: list[str]        # the greedy answer, cut at a new line or the next "Question:"
    references: list[str]     # the true answers

    @property
    def accuracy(self) -> float:
        return 100.0 * float(self.correct.mean())


def check_examples(examples: Sequence[LMExample], what: str = "questions") -> None:
    if len(examples) == 0:
        raise UnlearnInputError(f"no {what} to audit")


def answer_set(model, tokenizer, examples: Sequence[LMExample], batch_size: int = 64) -> AnswerSet:
    probability, lengths = _scored(model, tokenizer, examples, batch_size)
    prompts = [e.prompt for e in examples]
    references = [e.completion for e in examples]
    generated = greedy_continuations(model, tokenizer, prompts, lengths + EXTRA_ANSWER_TOKENS, batch_size)
    first = tokenizer.batch_decode([g[:n] for g, n in zip(generated, lengths)], skip_special_tokens=True)
    correct = np.array([normalise(f) == normalise(r) for f, r in zip(first, references)], dtype=bool)
    free = [_STOP.split(text, maxsplit=1)[0].strip()
            for text in tokenizer.batch_decode(generated, skip_special_tokens=True)]
    return AnswerSet(probability, correct, free, references)


def answer_accuracy(model, tokenizer, examples: Sequence[LMExample], batch_size: int = 64) -> float:
    """Exact-answer accuracy in percent (greedy decoding, normalised exact match)."""
    return answer_set(model, tokenizer, examples, batch_size).accuracy


def answer_probability(model, tokenizer, examples: Sequence[LMExample], batch_size: int = 64) -> np.ndarray:
    """P(answer | question)^(1/|answer|) per example (TOFU's "Probability")."""
    return _scored(model, tokenizer, examples, batch_size)[0]


def _scored(model, tokenizer, examples: Sequence[LMExample], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(P(a|q)^(1/|a|), |a| in tokens) per example."""
    check_examples(examples)
    logprob, count = completion_logprob(model, tokenizer, [e.prompt for e in examples],
                                        [e.completion for e in examples], batch_size=batch_size)
    return (logprob / count).exp().numpy().astype(np.float64), count.numpy().astype(int)
