"""Loss MIA: the NeurIPS 2023 Machine Unlearning challenge kit's `simple_mia`.

A logistic regression on the per-sample cross-entropy loss separates D_F (label 1) from D_T
(label 0). The two sets are balanced by subsampling the larger one, and the attack is scored by
10 stratified random splits (scikit-learn's StratifiedShuffleSplit, 10% held out, as in the kit);
"accuracy" is the kit's figure, the held-out accuracy averaged over the splits.

"auc" is the ROC AUC of the attack's score, −loss, over all of D_F vs D_T (our addition: the kit
reports accuracy only), with its DeLong 95% interval (auc_low, auc_high). A one-feature logistic
regression is monotone in the loss, so this is the AUC of its decisions with the direction fixed by the hypothesis (members have lower loss) rather
than refitted per fold: per-fold AUCs on ~25 held-out samples are noisy and, under the null, biased
below 50 by the refitted sign. Both figures are in percent; the retrained model sits near 50.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit

from unlearn.audit.scores import roc_summary
from unlearn.data import ArrayDataset
from unlearn.errors import UnlearnInputError
from unlearn.models import per_sample_loss


def loss_attack(member_loss: np.ndarray, nonmember_loss: np.ndarray, n_splits: int = 10,
                seed: int = 0) -> dict[str, float]:
    """The kit's attack on given losses: {"accuracy", "auc"} in percent."""
    rng = np.random.default_rng(seed)
    all_member, all_nonmember = np.asarray(member_loss, np.float64), np.asarray(nonmember_loss, np.float64)
    n = min(len(member_loss), len(nonmember_loss))
    if n < n_splits:
        raise UnlearnInputError(f"loss MIA needs at least {n_splits} samples on each side, got {n}")
    member_loss = rng.choice(all_member, n, replace=False)
    nonmember_loss = rng.choice(all_nonmember, n, replace=False)
    features = np.r_[member_loss, nonmember_loss][:, None]
    truth = np.r_[np.ones(n), np.zeros(n)]
    splits = StratifiedShuffleSplit(n_splits=n_splits, test_size=0.1, random_state=seed)
    accuracy = [LogisticRegression().fit(features[fit_rows], truth[fit_rows]).score(features[held], truth[held])
                for fit_rows, held in splits.split(features, truth)]
    roc = roc_summary(-all_member, -all_nonmember)
    return {"accuracy": 100.0 * float(np.mean(accuracy)), "auc": roc["auc"], "auc_low": roc["auc_low"],
            "auc_high": roc["auc_high"]}


def loss_mia(model, forget: ArrayDataset, test: ArrayDataset, n_splits: int = 10, seed: int = 0) -> dict[str, float]:
    """Loss MIA of D_F vs D_T on `model`."""
    return loss_attack(per_sample_loss(model, forget).numpy(), per_sample_loss(model, test).numpy(), n_splits, seed)
