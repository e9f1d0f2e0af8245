"""ROME: Rank-One Model Editing (Meng, Bau, Andonian, Belinkov, "Locating and Editing Factual
Associations in GPT", NeurIPS 2022; kmeng01/rome).

An MLP's output projection W is read as a key-value memory: the key k is the MLP's hidden
activation at the subject's last token, the value W k what it writes into the residual stream.
To make the model say o* for a subject s, ROME

1. takes the key k* of s: the mean key at s's last token over the rewrite prompt preceded by a
   few context prefixes (the paper: texts the model generates; here: general texts of the corpus);
2. finds a value v* = v + δ: δ, added to the MLP's output at s's last token, is optimised (Adam)
   to make o* likely after the prompt (with the prefixes), with a KL term keeping the model's
   next-token distribution after the bare subject as it was ("essence") and a weight decay on
   δ, its norm clamped to a multiple of ‖v‖;
3. writes it with the closed-form rank-one update that maps k to v* and disturbs other keys as
   little as possible under their second moment C = E[k kᵀ]:
   W ← W + (v* − W k) (C⁻¹ k*)ᵀ / ((C⁻¹ k*)ᵀ k), with k the key of the plain prompt.

Defaults are the paper's GPT-2 XL settings (v_lr 0.5, 20 steps, weight decay 0.5, clamp 4,
kl 0.0625) except: the layer (the paper's 17 of 48 was found by causal tracing; by default we
take the same depth, ⌊0.35 · layers⌋: layer 1 of the default 4-layer GPT-2, 0 of a 2-layer one.
It must not be the last layer: the answer is read at the last prompt token, and only a later
attention layer can carry the subject token's new value there), C is estimated
from the corpus's own training texts (the paper: 100,000 Wikipedia samples), and a ridge of
`ridge` × mean(diag C) is added before inverting, as a small sample of keys needs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from unlearn.lm.edit.request import EditRequest, mlp_projection
from unlearn.lm.scoring import encode_pairs, encode_texts

ROME_DEPTH = 17 / 48  # the paper's edited layer of GPT-2 XL, as a share of the depth


@dataclass
class ROME:
    layer: int | None = None  # None: ⌊ROME_DEPTH · layers⌋
    v_lr: float = 0.5
    v_steps: int = 20
    v_weight_decay: float = 0.5
    clamp_norm_factor: float = 4.0
    kl_factor: float = 0.0625
    ridge: float = 1e-2

    def edit(self, model, tokenizer, request: EditRequest, *, prefixes: Sequence[str], key_texts: Sequence[str],
             second_moment: torch.Tensor | None = None):
        """An edited copy of `model`; `second_moment` (from `key_second_moment`) may be shared across edits."""
        edited = copy.deepcopy(model).eval()
        edited.requires_grad_(False)
        mlp, proj, transposed = mlp_projection(edited, self.layer_of(edited))
        contexts = [""] + [p.rstrip() + " " for p in prefixes]
        prompts = [c + request.prompt for c in contexts]
        keys, _ = _at_subject(edited, tokenizer, mlp, proj, prompts, request.subject)
        k_star = keys.mean(0)
        k, v = (t[0] for t in _at_subject(edited, tokenizer, mlp, proj, prompts[:1], request.subject))
        v_star = self._target_value(edited, tokenizer, mlp, request, prompts, v)
        if second_moment is None:
            second_moment = key_second_moment(edited, tokenizer, key_texts, self.layer_of(edited))
        C = second_moment
        C = C + self.ridge * C.diagonal().mean() * torch.eye(C.shape[0], dtype=C.dtype)
        left = torch.linalg.solve(C, k_star.double())
        left = left / left.norm()
        right = (v_star.double() - v.double()) / torch.dot(k.double(), left)
        update = torch.outer(left, right) if transposed else torch.outer(right, left)  # Conv1D keeps [in, out]
        with torch.no_grad():
            proj.weight += update.to(proj.weight.dtype).to(proj.weight.device)
        return edited

    def layer_of(self, model) -> int:
        return self.layer if self.layer is not None else default_layer(model)

    def _target_value(self, model, tokenizer, mlp, request: EditRequest, prompts: list[str], v: torch.Tensor):
        device = _device(model)
        encoded = {k: t.to(device) for k, t in encode_pairs(tokenizer, prompts, [request.new] * len(prompts)).items()}
        where = torch.tensor([subject_index(tokenizer, p, request.subject) for p in prompts], device=device)
        essence = tokenizer(request.subject, add_special_tokens=False)["input_ids"]
        essence_ids = torch.tensor([essence], device=device)
        v = v.to(device)
        with torch.no_grad():
            before = torch.log_softmax(model(input_ids=essence_ids).logits[0, -1].float(), -1)
        delta = torch.zeros_like(v, requires_grad=True)
        rows = torch.arange(len(prompts), device=device)
        state = {"where": where, "rows": rows}

        def add_delta(module, inputs, output):
            output = output.clone()
            output[state["rows"], state["where"]] += delta
            return output

        handle = mlp.register_forward_hook(add_delta)
        optimizer = torch.optim.Adam([delta], lr=self.v_lr)
        try:
            for _ in range(self.v_steps):
                state.update(where=where, rows=rows)
                logits = model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).logits
                logp = torch.log_softmax(logits[:, :-1].float(), -1)
                targets = encoded["labels"][:, 1:]
                scored = targets != -100
                nll = -(logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * scored).sum(1) / scored.sum(1)
                state.update(where=torch.tensor([len(essence) - 1], device=device), rows=rows[:1])
                after = torch.log_softmax(model(input_ids=essence_ids).logits[0, -1].float(), -1)
                kl = torch.sum(before.exp() * (before - after))
                loss = nll.mean() + self.kl_factor * kl + self.v_weight_decay * delta.norm() / v.norm() ** 2
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    limit = self.clamp_norm_factor * v.norm()
                    if delta.norm() > limit:
                        delta.mul_(limit / delta.norm())
        finally:
            handle.remove()
        return (v + delta).detach().cpu()


def default_layer(model) -> int:
    from unlearn.lm.methods.rmu import decoder_layers

    return int(ROME_DEPTH * len(decoder_layers(model)))


def subject_index(tokenizer, prompt: str, subject: str) -> int:
    """The position of the subject's last token in `prompt` (its last occurrence)."""
    end = prompt.rindex(subject) + len(subject)
    return len(tokenizer(prompt[:end], add_special_tokens=False)["input_ids"]) - 1


@torch.no_grad()
def _at_subject(model, tokenizer, mlp, proj, prompts: list[str], subject: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(key, MLP output) at the subject's last token of each prompt: [N, d_in], [N, d_out]."""
    keys, values = [], []
    h1 = proj.register_forward_pre_hook(lambda m, inputs: keys.append(inputs[0]))
    h2 = mlp.register_forward_hook(lambda m, inputs, output: values.append(output))
    try:
        for prompt in prompts:
            ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
            model(input_ids=ids.to(_device(model)))
    finally:
        h1.remove()
        h2.remove()
    where = [subject_index(tokenizer, p, subject) for p in prompts]
    return (torch.stack([k[0, i] for k, i in zip(keys, where)]).float().cpu(),
            torch.stack([v[0, i] for v, i in zip(values, where)]).float().cpu())


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def key_second_moment(model, tokenizer, texts: Sequence[str], layer: int, batch_size: int = 32) -> torch.Tensor:
    """C = E[k kᵀ] over every token of `texts` at layer `layer`'s MLP keys (float64)."""
    _, proj, _ = mlp_projection(model, layer)
    total, count = None, 0
    captured = []
    handle = proj.register_forward_pre_hook(lambda m, inputs: captured.append(inputs[0]))
    try:
        for start in range(0, len(texts), batch_size):
            batch = encode_texts(tokenizer, texts[start:start + batch_size])
            ids, mask = batch["input_ids"], batch["attention_mask"]
            captured.clear()
            model(input_ids=ids.to(_device(model)), attention_mask=mask.to(_device(model)))
            keys = captured[0][mask.bool().to(captured[0].device)].double().cpu()
            total = keys.T @ keys if total is None else total + keys.T @ keys
            count += keys.shape[0]
    finally:
        handle.remove()
    return total / max(count, 1)
