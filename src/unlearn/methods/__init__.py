"""Unlearning methods, one module each, one interface (`Method.unlearn`), found by name.

    new_model = unlearn.methods.get("amun", lr=0.01).unlearn(model, forget, retain)
"""

from unlearn.methods.base import Method, available, get, get_class, register  # noqa: F401

# Importing a method's module registers it. Each module is added here as it lands.
from unlearn.methods import retrain, ft, rl, ga, neggrad, bs, l1_sparse, salun, scrub, sisa  # noqa: E402,F401  isort: skip  (baselines)
from unlearn.methods import amun  # noqa: E402,F401  isort: skip  (AMUN, AMUN + SalUn)
from unlearn.methods import sg  # noqa: E402,F401  isort: skip  (SG)
from unlearn.methods import ssd, bad_teacher, fisher, certified  # noqa: E402,F401  isort: skip  (SSD, Fisher forgetting, Bad Teacher, certified removal)
from unlearn.methods import loss_match  # noqa: E402,F401  isort: skip  (ours: loss matching to non-members, issue 27)
