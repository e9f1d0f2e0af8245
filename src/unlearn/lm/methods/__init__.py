"""Unlearning methods for causal language models: one loss each, one loop, a registry of their own.

    new_model = unlearn.lm.methods.get("npo", lr=1e-4).unlearn(model, tokenizer, forget, retain)

`forget` and `retain` are sequences of `unlearn.lm.examples.LMExample`. Retrain is not a method
here: the bench trains the oracle on the retained entities through the model bank
(`unlearn.lm.models.bank_lm`), as it does for classifiers.
"""

from unlearn.lm.methods.base import LMMethod, available, get, get_class, register  # noqa: F401
from unlearn.lm.methods.batch import LMBatch  # noqa: F401

# Importing a method's module registers it.
from unlearn.lm.methods import ga, graddiff, npo, simnpo, rmu, idk, amun, sg  # noqa: E402,F401  isort: skip
