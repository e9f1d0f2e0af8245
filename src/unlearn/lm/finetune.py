"""A few steps of plain fine-tuning on a handful of texts: what relearning attacks and edits share.

A relearning attack (Hu et al. 2024; Deeb & Roger 2024) fine-tunes an unlearned model for a
small budget of k steps on some texts and asks what came back; constrained fine-tuning (Zhu et
al. 2020, the baseline of ROME's CounterFact table) fine-tunes on a new fact with every weight
kept within a box around the original. Both are the same loop: AdamW at a constant learning
rate (a budget of k steps means the same k steps whatever the largest budget asked), the mean
token NLL of the completions, batches drawn from `seed` alone without touching the global
generators, an optional projection after every step, and a look at the model after the chosen
step counts, so one run of max(k) steps gives the whole curve. The input model is never changed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch

from unlearn.errors import DivergenceError, UnlearnInputError
from unlearn.lm.examples import LMExample
from unlearn.lm.methods.loop import only_train
from unlearn.lm.scoring import encode_pairs, mean_token_nll


def finetune_steps(model, tokenizer, examples: Sequence[LMExample], steps: int, *, lr: float, batch_size: int,
                   seed: int, at: Sequence[int] = (), look: Callable[[int, object], None] | None = None,
                   project: Callable[[object], None] | None = None, modules=None, device=None):
    """A copy of `model` after `steps` AdamW steps on the NLL of `examples`' completions.

    at, look : after each step count in `at` (0 = before any step), `look(step, model)` is called
        with the model in eval mode (it may audit it; it must not change it).
    project : called on the model after every step (under no_grad): constrained fine-tuning's
        projection back into the allowed set.
    modules : the modules whose weights are trained (None: all).
    """
    if not examples:
        raise UnlearnInputError("nothing to fine-tune on: no examples")
    if steps < 0 or batch_size < 1 or not lr > 0:
        raise UnlearnInputError(f"fine-tuning needs steps >= 0, batch_size >= 1 and lr > 0; got {steps}, "
                                f"{batch_size}, {lr}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    student = copy.deepcopy(model).to(device)
    flags = [p.requires_grad for p in student.parameters()]
    only_train(student, None if modules is None else modules(student))
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    wanted = sorted(set(int(k) for k in at))
    order: list[int] = []

    def checkpoint(step: int) -> None:
        if look is not None and step in wanted:
            student.eval()
            look(step, student)

    checkpoint(0)
    for step in range(1, steps + 1):
        if len(order) < batch_size:  # a stream of shuffled passes over the examples
            order += torch.randperm(len(examples), generator=generator).tolist()
        rows, order = order[:batch_size], order[batch_size:]
        batch = encode_pairs(tokenizer, [examples[i].prompt for i in rows], [examples[i].completion for i in rows])
        student.train()
        loss = mean_token_nll(student, batch)
        if not torch.isfinite(loss):
            raise DivergenceError("fine-tuning", step, float(loss.detach()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if project is not None:
            with torch.no_grad():
                project(student)
        checkpoint(step)
    for param, flag in zip(student.parameters(), flags):
        param.requires_grad_(flag)
        param.grad = None
    return student.eval()
