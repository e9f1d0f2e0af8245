"""What an LM loss receives: a few examples, their tokenizer, and the completions to train towards."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from unlearn.lm.examples import LMExample
from unlearn.lm.scoring import encode_pairs


@dataclass
class LMBatch:
    """A few examples and the tokenizer that encodes them; `targets` are the completions the
    method trains towards when they are not the true ones (a refusal, a nearest wrong answer)."""

    tokenizer: Any
    examples: list[LMExample]
    targets: list[str] | None = None

    def encode(self, completions: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """The prompts with `completions` (default: the true ones), labelled on the completion."""
        if completions is None:
            completions = [e.completion for e in self.examples]
        return encode_pairs(self.tokenizer, [e.prompt for e in self.examples], completions)

    def encode_targets(self) -> dict[str, torch.Tensor]:
        if self.targets is None:
            raise RuntimeError("this batch has no targets; the method's prepare() gives them")
        return self.encode(self.targets)
