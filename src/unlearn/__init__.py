"""unlearn: machine unlearning of trained classifiers, and audits that check it.

Layers (each imports only those before it): data, models, training, bank, attacks, methods,
audit, experiments, cli. See the project's DESIGN notes for the conventions they share.
"""

from unlearn import data, models, training  # noqa: F401
from unlearn.errors import DivergenceError, UnlearnInputError  # noqa: F401

__version__ = "0.1.0"
