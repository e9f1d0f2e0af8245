"""The one fine-tuning loop of every LM method: forget and retain batches, AdamW, a loss per method.

What OpenUnlearning's trainers share (its `UnlearnTrainer` over `transformers.Trainer`), written
once and small: the input model is deep-copied and never touched; the copy optionally gets LoRA
adapters (peft), merged back before it is returned; a frozen reference (the original) is kept
for the methods that compare with it; each epoch shuffles the forget set into batches and pairs
every forget batch with a retain batch of the same size drawn at random (OpenUnlearning's
"anchor: forget"); AdamW with linear warm-up and decay, gradient clipping; a loss that is NaN or
infinite stops the run with `DivergenceError`. Randomness (shuffling, retain draws, target
draws, dropout) comes from `seed` alone and leaves the global generators as they were. Nothing
here knows the architecture or the device: the model's device is used unless one is given.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time

import torch

from unlearn.errors import DivergenceError
from unlearn.lm.methods.batch import LMBatch


def finetune(method, model, tokenizer, forget: list, retain: list | None, *, seed: int,
             device=None, context: dict):
    """Train a copy of `model` on `method.loss` (an `LMMethod`, hyperparameters checked); return it."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    student = copy.deepcopy(model).to(device)
    flags = [p.requires_grad for p in student.parameters()]
    modules = method.trainable(student)
    if method.lora_rank:
        student = with_lora(student, method.lora_rank, modules)
    else:
        only_train(student, modules)
    reference = None
    if method.needs_reference:
        reference = adapters_off(student) if method.lora_rank else frozen_copy(model, device)
    cuda = [device] if device.type == "cuda" else []
    started = time.perf_counter()
    try:
        method.reference_ = reference
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)  # dropout, and any draw a loss makes (RMU's direction)
            generator = torch.Generator().manual_seed(seed)
            candidates = method.prepare(student, tokenizer, forget, retain, generator=generator, context=context)
            losses = _train(method, student, tokenizer, forget, retain, candidates, generator)
    finally:
        method.reference_ = None
    if method.lora_rank:
        student = student.merge_and_unload()
    for param, flag in zip(student.parameters(), flags):
        param.requires_grad_(flag)
        param.grad = None
    method.stats_ = {**getattr(method, "stats_", {}), "steps": len(losses), "first_loss": losses[0],
                     "last_loss": losses[-1], "seconds": time.perf_counter() - started}
    return student.eval()


def _train(method, model, tokenizer, forget: list, retain: list | None,
           candidates: list[tuple[str, ...]] | None, generator: torch.Generator) -> list[float]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=method.lr, weight_decay=method.weight_decay)
    per_epoch = math.ceil(len(forget) / method.batch_size)
    total = method.epochs * per_epoch
    warmup = min(total, round(method.warmup_epochs * per_epoch))

    def rate(step: int) -> float:  # linear warm-up then linear decay; no step taken at 0
        return (step + 1) / warmup if step < warmup else max(total - step, 0) / max(total - warmup, 1)

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    model.train()
    losses: list[float] = []
    for _ in range(method.epochs):
        order = torch.randperm(len(forget), generator=generator).tolist()
        for start in range(0, len(forget), method.batch_size):
            rows = order[start:start + method.batch_size]
            targets = None
            if candidates is not None:
                targets = [candidates[i][int(torch.randint(len(candidates[i]), (1,), generator=generator))]
                           for i in rows]
            forget_batch = LMBatch(tokenizer, [forget[i] for i in rows], targets)
            retain_batch = None
            if retain is not None:
                drawn = torch.randint(len(retain), (len(rows),), generator=generator).tolist()
                retain_batch = LMBatch(tokenizer, [retain[i] for i in drawn])
            loss = method.loss(model, forget_batch, retain_batch)
            if not torch.isfinite(loss):
                raise DivergenceError(method.name, len(losses), float(loss.detach()))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if method.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, method.max_grad_norm)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
    optimizer.zero_grad(set_to_none=True)
    return losses


def only_train(model, modules: list[torch.nn.Module] | None) -> None:
    """Freeze every weight outside `modules` (None: train everything)."""
    if modules is None:
        return
    chosen = {id(p) for m in modules for p in m.parameters()}
    for param in model.parameters():
        param.requires_grad_(id(param) in chosen)


def with_lora(model, rank: int, modules: list[torch.nn.Module] | None):
    """`model` with rank-`rank` LoRA adapters on the linear layers of `modules` (None: all but the head)."""
    from peft import LoraConfig, get_peft_model

    if modules is None:
        targets = "all-linear"
    else:
        inside = {id(sub) for m in modules for sub in m.modules()}
        targets = [name for name, sub in model.named_modules()
                   if id(sub) in inside and _is_linear(sub)]
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets,
                        fan_in_fan_out=_uses_conv1d(model))
    return get_peft_model(model, config)


def _is_linear(module) -> bool:
    return isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"


def _uses_conv1d(model) -> bool:
    """GPT-2 stores its linear layers transposed (`transformers`' Conv1D); peft must be told."""
    return any(type(m).__name__ == "Conv1D" for m in model.modules())


def frozen_copy(model, device):
    """The original, frozen in eval mode on the training device: the reference a loss compares with."""
    reference = copy.deepcopy(model).to(device).eval()
    reference.requires_grad_(False)

    @contextlib.contextmanager
    def use():
        yield reference

    return use


def adapters_off(peft_model):
    """The reference of a LoRA run: the same model with its adapters switched off, in eval mode."""

    @contextlib.contextmanager
    def use():
        was_training = peft_model.training
        peft_model.eval()
        try:
            with peft_model.disable_adapter():
                yield peft_model
        finally:
            peft_model.train(was_training)

    return use
