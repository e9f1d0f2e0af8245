"""MUSE's PrivLeak (Shi et al. 2024): the MIA's AUC relative to the retrained model's.

MUSE computes the AUC of a membership attack with the *held-out* texts as the positive class, so
an un-unlearned model (forget texts clearly members) has AUC' ≈ 0 and Retrain ≈ 0.5; then

    PrivLeak = (AUC'_model − AUC'_retrain) / AUC'_retrain · 100.

We report AUCs the usual way (forget texts positive; AUC = 100 − AUC'), and convert, so our
PrivLeak equals MUSE's, sign included: 0 for Retrain; strongly negative (towards −100) for a model
that still holds the forget texts (under-unlearned); positive for one that makes them look less
like members than unseen text does (over-unlearned). OpenUnlearning converts the same way.
"""

from __future__ import annotations

import math


def priv_leak(auc_model: float, auc_retrain: float) -> float | None:
    """PrivLeak in percent from two Min-K%++ AUCs in percent (forget texts positive); None when the
    retrained model's AUC is 100 (MUSE's AUC' = 0: undefined)."""
    model_prime, retrain_prime = 100.0 - float(auc_model), 100.0 - float(auc_retrain)
    if retrain_prime <= 0 or not math.isfinite(retrain_prime):
        return None
    return (model_prime - retrain_prime) / retrain_prime * 100.0
