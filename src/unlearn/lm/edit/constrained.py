"""Constrained fine-tuning: the simplest edit, and ROME's strongest fine-tuning baseline.

Zhu, Rawat, Zaheer, Bhojanapalli, Li, Yu, Kumar, "Modifying Memories in Transformer Models"
(2020): fine-tune on the new fact with the weights kept in an L∞ ball around the original,
‖θ − θ₀‖∞ ≤ ε, by projecting (clamping) after every step; ROME (Meng et al. 2022) runs it as
"FT+L" on one MLP's output projection (weight and bias, both in the box). Here: AdamW steps on the NLL of the new answer after the
rewrite prompt, only that projection trained (`unlearn.lm.finetune.finetune_steps`).

Defaults: ROME's GPT-2 XL "FT+L" has lr 5e-4, 25 steps, ε 5e-4 on layer 0's projection; a
small GPT-2 trained from scratch at lr 2e-3 has larger weights and needs a larger box: ε and
lr are arguments, the bench reports what it used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearn.lm.edit.request import EditRequest, mlp_projection
from unlearn.lm.edit.rome import default_layer
from unlearn.lm.examples import LMExample
from unlearn.lm.finetune import finetune_steps


@dataclass
class ConstrainedFineTuning:
    layer: int | None = None  # None: ROME's depth (`unlearn.lm.edit.rome.default_layer`)
    lr: float = 5e-3
    steps: int = 25
    epsilon: float = 5e-3

    def edit(self, model, tokenizer, request: EditRequest, **_):
        layer = self.layer if self.layer is not None else default_layer(model)
        original = [p.detach().clone() for p in mlp_projection(model, layer)[1].parameters()]

        def project(current) -> None:  # every trained parameter (weight and bias) back into its box
            for param, start in zip(mlp_projection(current, layer)[1].parameters(), original):
                param.copy_(torch.maximum(torch.minimum(param, start + self.epsilon), start - self.epsilon))

        return finetune_steps(model, tokenizer, [LMExample(request.prompt, request.new)], self.steps, lr=self.lr,
                              batch_size=1, seed=0, project=project,
                              modules=lambda m: [mlp_projection(m, layer)[1]])
