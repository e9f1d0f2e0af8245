"""MIS: SalUn's "MIA-efficacy" (Fan et al., ICLR 2024, "SalUn"; the SVC_MIA of its public code).

An SVC (RBF kernel, C = 3, gamma "auto") is fitted on the evaluated model's true-class
confidence, with members = a random subset of D_R of the size of D_T (at most 10,000) and
non-members = D_T. MIS = 100 × the fraction of D_F it predicts to be non-members. Its target is
the retrained model's value, not 100: a model that over-forgets also scores high.
"""

from __future__ import annotations

import numpy as np
from sklearn.svm import SVC

from unlearn.data import ArrayDataset
from unlearn.models import true_class_confidence

MAX_SHADOW = 10_000  # SalUn caps the shadow sets at 10,000 samples each


def mis(model, forget: ArrayDataset, retain: ArrayDataset, test: ArrayDataset, seed: int = 0) -> dict[str, float]:
    """{"mis": percent of D_F predicted non-member}."""
    rng = np.random.default_rng(seed)
    n_nonmembers = min(len(test), MAX_SHADOW)
    nonmembers = test if n_nonmembers == len(test) else test.subset(rng.choice(len(test), n_nonmembers, replace=False))
    n_members = min(len(retain), n_nonmembers)
    members = retain.subset(np.sort(rng.choice(len(retain), n_members, replace=False)))
    features = np.r_[true_class_confidence(model, members).numpy(), true_class_confidence(model, nonmembers).numpy()]
    is_member = np.r_[np.ones(n_members), np.zeros(n_nonmembers)]
    svc = SVC(C=3, gamma="auto", kernel="rbf").fit(features[:, None], is_member)
    predicted = svc.predict(true_class_confidence(model, forget).numpy()[:, None])
    return {"mis": 100.0 * float((predicted == 0).mean())}
