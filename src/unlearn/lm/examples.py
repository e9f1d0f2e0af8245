"""What LM methods and audits consume: a prompt, its completion, and wrong completions of its kind.

A question/answer fact becomes `LMExample(QA_PROMPT.format(question=q), answer, alternatives)`;
plain text (MUSE's books and news) becomes `LMExample("", text)`. `alternatives` are wrong
completions of the same kind (the other values of the same attribute): TOFU's perturbed answers
for the truth ratio, the candidates among which AMUN's "nearest wrong answer" is found.
"""

from __future__ import annotations

from dataclasses import dataclass

# How a question is put to the model, in training and in every audit; the answer follows a space.
QA_PROMPT = "Question: {question}\nAnswer:"


@dataclass(frozen=True)
class LMExample:
    prompt: str
    completion: str
    alternatives: tuple[str, ...] = ()
    id: str = ""
