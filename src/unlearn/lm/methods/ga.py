"""GA: gradient ascent on the forget set, the floor every LM unlearning paper beats.

Minimises −NLL(F), the mean token negative log-likelihood of the forget answers negated
(TOFU, Maini et al. 2024, "Gradient Ascent"; OpenUnlearning's `GradAscent`). Unbounded below:
it lowers the forget likelihood without limit and takes the rest of the model down with it,
which is why NPO bounds it and GradDiff adds a retain term. Defined on D_F alone: a retain set
given to it is not used.
"""

from __future__ import annotations

from unlearn.lm.methods.base import LMMethod, register
from unlearn.lm.scoring import mean_token_nll


@register
class GA(LMMethod):
    """Gradient ascent: minimise −NLL(F). The loop's hyperparameters only (`LMMethod`)."""

    name = "ga"
    uses_retain = False

    def loss(self, model, forget_batch, retain_batch):
        return -mean_token_nll(model, forget_batch.encode())
