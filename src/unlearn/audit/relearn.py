"""Relearning attack: does forgotten knowledge come back after a few fine-tuning steps?

Suppressed knowledge returns fast; removed knowledge does not (Hu et al. 2024, "Jogging the
Memory of Unlearned LLMs"; METHODS.md "Relearning attack"). We fine-tune a copy of the model for
`steps` full-batch SGD steps on a small random part of D_F and measure forget accuracy on the
rest of D_F after each step, for the audited model and for the retrained one under the same
attack. The models given are never modified. The number per method is "after": forget accuracy
on the held-out part of D_F after the `steps` steps; "excess" is that minus the retrained model's
"after" under the same attack (≈ 0: nothing suppressed comes back; > 0: knowledge returns).
"""

from __future__ import annotations

import copy

import numpy as np

from unlearn.data import ArrayDataset
from unlearn.errors import UnlearnInputError
from unlearn.models import accuracy
from unlearn.training import Recipe, Source, fit


def relearn_split(n_forget: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(relearn, held-out) positions into D_F: a random `fraction` to train on, the rest to measure."""
    if not 0 < fraction < 1:
        raise UnlearnInputError(f"relearn fraction must lie in (0, 1), got {fraction}")
    n_relearn = int(round(fraction * n_forget))
    if not 0 < n_relearn < n_forget:
        raise UnlearnInputError(f"relearning needs a forget set of at least 2 samples; it has {n_forget}")
    order = np.random.default_rng(seed).permutation(n_forget)
    return np.sort(order[:n_relearn]), np.sort(order[n_relearn:])


def relearned(model, relearn_set: ArrayDataset, steps: int = 10, lr: float = 0.01, seed: int = 0, device="cpu",
              on_step=None):
    """A copy of `model` after `steps` full-batch SGD steps on `relearn_set` (`on_step(copy)` after each)."""
    if steps < 1:
        raise UnlearnInputError(f"relearning needs at least one step, got {steps}")
    student = copy.deepcopy(model).to(device)
    # One full batch per epoch: `epochs` = steps.
    recipe = Recipe(optimizer="sgd", lr=lr, momentum=0.9, weight_decay=0.0, epochs=steps,
                    batch_size=len(relearn_set), schedule="constant")
    fit(student, [Source(relearn_set, augment=False)], recipe, seed=seed, device=device,
        after_step=None if on_step is None else lambda: on_step(student), name="relearning attack", progress=False)
    return student


def relearn_curve(model, relearn_set: ArrayDataset, held_out: ArrayDataset, steps: int = 10, lr: float = 0.01,
                  seed: int = 0, device="cpu") -> list[float]:
    """Forget accuracy on `held_out` before and after each of `steps` full-batch SGD steps on `relearn_set`."""
    if steps < 1:
        raise UnlearnInputError(f"relearning needs at least one step, got {steps}")
    curve = [accuracy(model, held_out)]

    def record(student) -> None:
        curve.append(accuracy(student, held_out))
        student.train()  # accuracy() restores the mode, but be explicit: the next step trains

    relearned(model, relearn_set, steps, lr, seed, device, on_step=record)
    return curve


def relearn(model, forget: ArrayDataset, reference=None, *, steps: int = 10, lr: float = 0.01,
            fraction: float = 0.2, seed: int = 0, device="cpu") -> dict:
    """{"steps": [0..steps], "model": FA curve, "after": its last value, and, with the retrained model,
    "reference": its FA curve, "reference_after" and "excess" (after − reference_after)}."""
    relearn_idx, held_idx = relearn_split(len(forget), fraction, seed)
    relearn_set, held_out = forget.subset(relearn_idx), forget.subset(held_idx)
    out = {"steps": list(range(steps + 1)),
           "model": relearn_curve(model, relearn_set, held_out, steps, lr, seed, device)}
    out["after"] = out["model"][-1]
    if reference is not None:
        with_reference(out, relearn_curve(reference, relearn_set, held_out, steps, lr, seed, device))
    return out


def with_reference(result: dict, reference_curve: list[float]) -> dict:
    """Add the retrained model's curve (same attack, same split) and the excess relearned accuracy."""
    result["reference"] = list(reference_curve)
    result["reference_after"] = result["reference"][-1]
    result["excess"] = result["after"] - result["reference_after"]
    return result
