"""SimNPO: NPO without a reference model, on the length-normalised likelihood.

Fan, Liu, Lin, Jia, Zhang, Mei, Liu, "Simplicity Prevails: Rethinking Negative Preference
Optimization for LLM Unlearning", 2024. NPO's reference model biases it towards forgetting
short, easy answers first; SimNPO drops the reference and normalises by the answer's length:

    L_F = −(2/β) · E_F[ log σ(β · (NLL(y|x)/|y| − δ)) ],

NLL summed over the answer's |y| tokens. Written, as OpenUnlearning does, with the margin δ
inside the product (the paper writes σ(−(β/|y|)·log π_θ(y|x) − γ), i.e. δ = γ/β). Plus α·NLL(R).
Defaults are OpenUnlearning's TOFU values (from the authors' config): β = 4.5, δ = 0, forget
weight γ = 0.125, α = 1.
"""

from __future__ import annotations

import torch.nn.functional as F

from unlearn.lm.methods.base import LMMethod, register
from unlearn.lm.scoring import sequence_nll


def simnpo_loss(nll, n_tokens, beta: float, delta: float):
    """−(2/β)·mean log σ(β·(nll/n_tokens − δ)) over sequences."""
    return -(2.0 / beta) * F.logsigmoid(beta * (nll / n_tokens - delta)).mean()


@register
class SimNPO(LMMethod):
    """SimNPO (+ α·NLL(R) when a retain set is given).

    beta : inverse temperature (4.5). delta : reward margin (0). gamma : weight of the forget
    term (0.125, the authors' `npo_coeff`). alpha : weight of the retain term (1).
    Other hyperparameters: the loop's (`LMMethod`).
    """

    name = "simnpo"

    def __init__(self, beta: float = 4.5, delta: float = 0.0, gamma: float = 0.125, alpha: float = 1.0, **loop):
        super().__init__(**loop)
        self.beta = beta
        self.delta = delta
        self.gamma = gamma
        self.alpha = alpha

    def check(self):
        super().check()
        self.positive("beta")
        self.non_negative("delta", "gamma", "alpha")

    def loss(self, model, forget_batch, retain_batch):
        nll, n_tokens = sequence_nll(model, forget_batch.encode())
        forget = simnpo_loss(nll, n_tokens.clamp(min=1), self.beta, self.delta)
        return self.gamma * forget + self.alpha * self.retain_nll(model, retain_batch)
