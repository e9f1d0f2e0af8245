"""Retrain: train from scratch on D_R with the original recipe. Exact, and the oracle of every audit.

The architecture, its arguments, the recipe and the seed are those recorded in `model.spec`
(the original model is used for nothing else), so Retrain answers "what would the owner have
got had D_F never been there". With a `bank` context argument plus the `dataset` and the retain
indices (`split=ForgetSplit` or `retain_indices=`), the model comes from the `ModelBank` and is
trained once per setting; without them it is trained here, with the same code path as the bank
(`torch.manual_seed(seed)`, fresh classifier, `fit` on D_R in the given order), so both routes give
bit-identical weights on CPU when D_R is given in ascending index order.

    oracle = unlearn.methods.get("retrain").unlearn(model, forget, retain, bank=bank, dataset=ds, split=split)
"""

from __future__ import annotations

import numpy as np
import torch

from unlearn.errors import UnlearnInputError
from unlearn.methods.base import Method, register
from unlearn.models import Classifier
from unlearn.training import fit, get_recipe


@register
class Retrain(Method):
    """Retraining from scratch on D_R (the gold standard θ_r).

    Parameters
    ----------
    recipe : None (default) to reuse the recipe recorded in the model's spec, or a recipe name /
        dict to override it (e.g. fewer epochs for a quick check; then it is no longer the oracle).

    Context arguments (optional)
    ----------------------------
    bank : `unlearn.bank.ModelBank` to serve / store the retrained model.
    dataset : the `unlearn.data.Dataset` the model was trained on (needed with `bank`).
    split : the `ForgetSplit` (or `retain_indices`: the retain indices), needed with `bank`.
    """

    name = "retrain"
    requires_retain = True

    def __init__(self, recipe: str | dict | None = None):
        self.recipe = recipe

    def _unlearn(self, model, forget, retain, *, seed, device, **context):
        spec = getattr(model, "spec", None)
        if spec is None:
            raise UnlearnInputError("retrain needs an unlearn Classifier (with a spec naming its architecture)")
        training = spec.get("training") or {}
        if self.recipe is None and "recipe" not in training:
            raise UnlearnInputError("retrain: the model records no training recipe; pass recipe=NAME")
        recipe = get_recipe(self.recipe if self.recipe is not None else training["recipe"])
        train_seed = int(training.get("seed", seed))  # the original's seed: the oracle of *this* model
        bank, dataset = context.get("bank"), context.get("dataset")
        retain_indices = context.get("retain_indices")
        if retain_indices is None and context.get("split") is not None:
            retain_indices = context["split"].retain
        if bank is not None and dataset is not None and retain_indices is not None:
            if len(retain_indices) != len(retain):
                raise UnlearnInputError(f"retrain: {len(retain_indices)} retain indices for a retain set of "
                                        f"{len(retain)} samples")
            return bank.get(dataset, spec["arch"], np.asarray(retain_indices), recipe, seed=train_seed,
                            device=device, arch_args=spec["arch_args"], name=self.name)
        torch.manual_seed(train_seed)
        fresh = Classifier(spec["arch"], spec["num_classes"], spec["input_shape"], spec["mean"], spec["std"],
                           spec["classes"], spec["arch_args"])
        fit(fresh, retain, recipe, seed=train_seed, device=device, name=self.name)
        fresh.spec["training"] = {**training, "recipe": recipe.to_dict(), "seed": train_seed,
                                  "n_train": len(retain), "retrained_from_scratch": True}
        return fresh
