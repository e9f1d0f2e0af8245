"""SG for language models: unlearning as a Stackelberg game against a sequence-level auditor.

SG (Di, Yu, Vorobeychik, Liu, "Adversarial Machine Unlearning", ICLR 2025; `unlearn.methods.sg`
for classifiers): the unlearner (leader) minimises its own loss plus α times the utility of an
auditor (follower) that is re-fitted to tell the forget set (members) from known non-members,
and differentiates through the auditor's optimum by implicit differentiation.

What carries over unchanged: the auditor itself, `unlearn.methods.sg_auditor`: a ridge-
regularised logistic regression solved by Newton's method, its utility U_a = minus its
held-out loss over balanced 70/30 splits (3 of them), standardisation fixed once from the
original model, and the exact implicit gradient into the features of both sides. What changes:

- Features. A classifier's auditor reads logits and the loss; a language model's reads the
  sequence-level signals membership attacks on LMs use: the answer's mean token NLL (the LOSS
  attack) and its Min-K% score (Shi et al. 2024: the mean of the k = 20% lowest token
  log-probabilities). Both are differentiable in the weights.
- Non-members: `holdout=`, questions about entities no model trained on (the corpus's holdout
  split), as the classifier SG takes the validation half of the test split. Refused if absent.
- The game is played per batch inside the shared loop: each step fits the auditor on the forget
  batch against an equal random draw of holdout examples and adds α·U_a to the base loss, one
  AdamW step for both (the classifier SG alternates an SGD pass of the base loss with one
  attack step per epoch over all of D_F). A batch of fewer than 4 forget examples (the last one
  of an epoch) takes the base loss alone: its auditor could not be split.
- Base loss: "ft" = NLL(R) (the paper's FT base); "rl" = NLL(R) + NLL of the forget questions
  with a wrong alternative drawn anew each time (the LM form of random labels, needs
  `LMExample.alternatives`).
- No checkpoint selection: the final model is returned (the classifier SG keeps the epoch with
  the best validation-minus-MIA score; an LM validation set is not part of the interface yet).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from unlearn.errors import UnlearnInputError
from unlearn.lm.methods.base import LMMethod, register
from unlearn.lm.methods.batch import LMBatch
from unlearn.lm.scoring import mean_token_nll, token_logprobs
from unlearn.methods.sg_auditor import audit, audit_tasks


def sequence_features(model, encoded: dict[str, torch.Tensor], k: float = 0.2) -> torch.Tensor:
    """[mean token NLL, −Min-K% score] of every completion, [B, 2]; differentiable.

    Min-K% is the mean of the ⌈k·n⌉ lowest token log-probabilities of an n-token completion;
    negated, so that both features are larger for less likely (less member-like) answers.
    """
    logp, scored = token_logprobs(model, encoded)
    count = scored.sum(1).clamp(min=1)
    mean_nll = -logp.sum(1) / count
    lowest = torch.where(scored, logp, torch.full_like(logp, math.inf)).sort(dim=1).values
    keep = torch.ceil(k * count).clamp(min=1)
    within = torch.arange(logp.shape[1], device=logp.device)[None, :] < keep[:, None]
    min_k = torch.where(within, lowest, torch.zeros_like(lowest)).sum(1) / keep
    return torch.stack([mean_nll, -min_k], dim=1)


@register
class SG(LMMethod):
    """Stackelberg-game unlearning against a sequence-level membership auditor.

    alpha : weight of the auditor's utility (1, the classifier SG's default; 0 turns it off).
    base : "ft" (NLL on the retain set) or "rl" (plus forget questions with random wrong answers).
    k : the Min-K% fraction (0.2, Shi et al. 2024).
    l2, n_splits, train_fraction : the auditor's ridge term (1e-2) and its 3 splits of 70/30, as
        the classifier SG.
    Other hyperparameters: the loop's (`LMMethod`). Context: `holdout`, LMExamples of non-members.
    After `unlearn`, `stats_["auditor_accuracy"]` lists the auditor's held-out accuracy per step.
    """

    name = "sg"
    requires_retain = True

    def __init__(self, alpha: float = 1.0, base: str = "ft", k: float = 0.2, l2: float = 1e-2, n_splits: int = 3,
                 train_fraction: float = 0.7, **loop):
        super().__init__(**loop)
        self.alpha = alpha
        self.base = base
        self.k = k
        self.l2 = l2
        self.n_splits = n_splits
        self.train_fraction = train_fraction

    def check(self):
        super().check()
        self.non_negative("alpha")
        self.positive("l2")
        self.choice("base", ("ft", "rl"))
        self.integer("n_splits", 1)
        for key in ("k", "train_fraction"):
            if not (isinstance(getattr(self, key), float) and 0 < getattr(self, key) < 1):
                self._refuse(key, "a number in (0, 1)")

    def prepare(self, model, tokenizer, forget, retain, *, generator, context):
        holdout = context.get("holdout")
        if not holdout:
            raise UnlearnInputError("sg needs `holdout`: LMExamples of known non-members (the corpus's holdout "
                                    "entities); it refuses to run without them")
        self.holdout_, self.generator_ = list(holdout), generator
        with torch.no_grad():
            model.eval()
            stacked = torch.cat([self._features(model, tokenizer, part) for part in (forget, self.holdout_)])
            model.train()
        # The auditor's standardisation, fixed once from the original (as the classifier SG does).
        self.scale_ = (stacked.mean(0), stacked.std(0).nan_to_num(1.0).clamp_min(1e-6))
        self.stats_ = {"auditor_accuracy": []}
        if self.base == "rl":
            missing = [e.id or e.prompt[:40] for e in forget if not e.alternatives]
            if missing:
                raise UnlearnInputError(f"sg with base 'rl' needs wrong alternatives; none for {missing[:3]}")
            return [e.alternatives for e in forget]
        return None

    def _features(self, model, tokenizer, examples) -> torch.Tensor:
        return torch.cat([sequence_features(model, LMBatch(tokenizer, examples[i:i + self.batch_size]).encode(), self.k)
                          for i in range(0, len(examples), self.batch_size)])

    def loss(self, model, forget_batch, retain_batch):
        base = mean_token_nll(model, retain_batch.encode())
        if self.base == "rl":
            base = base + mean_token_nll(model, forget_batch.encode_targets())
        n = len(forget_batch.examples)
        if self.alpha == 0 or n < 4:
            return base
        drawn = torch.randperm(len(self.holdout_), generator=self.generator_)[:n].tolist()
        nonmembers = LMBatch(forget_batch.tokenizer, [self.holdout_[i] for i in drawn])
        member_features = sequence_features(model, forget_batch.encode(), self.k)
        nonmember_features = sequence_features(model, nonmembers.encode(), self.k)
        seed = int(torch.randint(2**31 - 1, (1,), generator=self.generator_))
        tasks = audit_tasks(np.zeros(n), np.zeros(len(drawn)), per_class=True, n_splits=self.n_splits,
                            train_fraction=self.train_fraction, seed=seed)
        outcome = audit(member_features, nonmember_features, tasks, kind="logistic", l2=self.l2, scale=self.scale_)
        self.stats_["auditor_accuracy"].append(outcome.accuracy)
        return base + self.alpha * outcome.utility.to(base.dtype)
