"""Unlearning methods, one module each, one interface (`Method.unlearn`), found by name.

    new_model = unlearn.methods.get("amun", lr=0.01).unlearn(model, forget, retain)
"""

from unlearn.methods.base import Method, available, get, get_class, register  # noqa: F401

# Importing a method's module registers it. Each module is added here as it lands.
