"""What unlearning must not destroy: perplexity on general text and TOFU's model utility.

- **Perplexity** on text about no entity: exp of the mean token negative log-likelihood over
  every scored token of the texts together (the first token of a text has no context and is not
  scored). A method that wrecks the language model shows it here first.
- **Model utility** (TOFU, Maini et al. 2024): the harmonic mean of answer probability, ROUGE-L
  recall of the greedy answer (stemmed, TOFU's setting) and truth-ratio score max(0, 1 − R) on
  knowledge the model must keep. TOFU takes those three on its retain set and on two sets of
  real-world knowledge (real authors, world facts; nine parts in all). Our corpus has no
  real-world questions; we take the three on the retain set and the three on the neighbour set
  (entities sharing attribute values with forgotten ones: the knowledge a careless method damages
  first, the nearest counterpart of TOFU's real authors), six parts when the split has
  neighbours, three when it has none. A harmonic mean is 0 when any part is 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import hmean

from unlearn.errors import UnlearnInputError
from unlearn.lm.scoring import completion_logprob


def perplexity(model, tokenizer, texts: Sequence[str], batch_size: int = 64) -> float:
    """exp(total NLL / total tokens) over `texts`, each scored from its second token."""
    if len(texts) == 0:
        raise UnlearnInputError("no texts for perplexity")
    logprob, count = completion_logprob(model, tokenizer, [""] * len(texts), list(texts), batch_size=batch_size)
    tokens = int(count.sum())
    if tokens == 0:
        raise UnlearnInputError("perplexity needs texts of at least two tokens")
    return float(np.exp(-float(logprob.double().sum()) / tokens))


def model_utility(parts: Mapping[str, float]) -> float:
    """TOFU's model utility: the harmonic mean of its parts (each in [0, 1])."""
    values = np.asarray(list(parts.values()), dtype=np.float64)
    if values.size == 0:
        raise UnlearnInputError("model utility needs at least one part")
    if (values < 0).any() or (values > 1).any() or not np.isfinite(values).all():
        raise UnlearnInputError(f"model utility's parts must lie in [0, 1], got {dict(parts)}")
    return 0.0 if (values == 0).any() else float(hmean(values))
