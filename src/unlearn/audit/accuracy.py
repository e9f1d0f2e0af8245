"""Accuracies of an unlearned model: forget (FA), retain (RA), test (TA) and UA = 100 − FA.

The retrained model's FA sits near its TA (D_F is unseen data to it); an unlearned model should
match θ_r on all three, neither higher (not forgotten) nor far lower (over-unlearning).
"""

from __future__ import annotations

from unlearn.data import ArrayDataset
from unlearn.models import accuracy


def accuracies(model, forget: ArrayDataset, retain: ArrayDataset, test: ArrayDataset) -> dict[str, float]:
    """{"forget", "retain", "test", "ua"} in percent."""
    forget_accuracy = accuracy(model, forget)
    return {"forget": forget_accuracy, "retain": accuracy(model, retain), "test": accuracy(model, test),
            "ua": 100.0 - forget_accuracy}
