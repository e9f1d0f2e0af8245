"""MIS: SalUn's "MIA-efficacy" (Fan et al., ICLR 2024, "SalUn"; the SVC_MIA of its public code).

An SVC (RBF kernel, C = 3, gamma "auto") is fitted on the evaluated model's true-class
confidence, with members from D_R and non-members from D_T in *equal numbers*: n = min(|D_R|,
|D_T|, 10,000) random samples of each. MIS = 100 × the fraction of D_F it predicts to be
non-members. Its target is the retrained model's value, not 100: a model that over-forgets also
scores high.

Deviation from SalUn's code: it takes all of D_T (up to 10,000) as non-members and min(|D_R|, that)
members, so when D_R is the smaller set (50% forget on a small training set) the SVC is fitted on
unequal classes and leans towards "non-member", which inflates MIS for every model alike.
"""

from __future__ import annotations

import numpy as np
from sklearn.svm import SVC

from unlearn.data import ArrayDataset
from unlearn.models import true_class_confidence

MAX_SHADOW = 10_000  # SalUn caps the shadow sets at 10,000 samples each


def balanced_shadow_sets(n_retain: int, n_test: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows of D_R (members) and of D_T (non-members) the SVC is fitted on: as many of each."""
    n = min(n_retain, n_test, MAX_SHADOW)
    rng = np.random.default_rng(seed)
    return (np.sort(rng.choice(n_retain, n, replace=False)), np.sort(rng.choice(n_test, n, replace=False)))


def mis(model, forget: ArrayDataset, retain: ArrayDataset, test: ArrayDataset, seed: int = 0) -> dict[str, float]:
    """{"mis": percent of D_F predicted non-member}."""
    member_rows, nonmember_rows = balanced_shadow_sets(len(retain), len(test), seed)
    members, nonmembers = retain.subset(member_rows), test.subset(nonmember_rows)
    features = np.r_[true_class_confidence(model, members).numpy(), true_class_confidence(model, nonmembers).numpy()]
    is_member = np.r_[np.ones(len(member_rows)), np.zeros(len(nonmember_rows))]
    svc = SVC(C=3, gamma="auto", kernel="rbf").fit(features[:, None], is_member)
    predicted = svc.predict(true_class_confidence(model, forget).numpy()[:, None])
    return {"mis": 100.0 * float((predicted == 0).mean())}
