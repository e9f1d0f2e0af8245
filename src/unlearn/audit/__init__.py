"""Audits: did the model really forget? (METHODS.md "Audits").

One small module per measurement: `accuracy` (FA, RA, TA, UA), `mis` (SalUn's MIA-efficacy),
`loss_mia` (NeurIPS 2023 kit), `rmia` and `lira` over reference models from the bank
(`references`), `ulira` (U-LiRA, for a method), `gap` (Avg. Gap to retrain, seeds), `confidence`
(distributions and histograms), `relearn` (relearning attack). `evaluate` runs a chosen set of them
on one model and returns every figure in percent:

    report = unlearn.audit.evaluate(model, ds, split, attacks=("acc", "mis", "loss", "rmia"),
                                    reference=retrained, bank=bank)
    report["rmia"]["auc"], report["gap"]["avg_gap"]
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from unlearn.audit.accuracy import accuracies
from unlearn.audit.confidence import confidence_distance, plot_confidence  # noqa: F401
from unlearn.audit.gap import DEFAULT_GAP_KEYS, avg_gap, flatten, gap_over_seeds, summarize, summarize_runs  # noqa: F401
from unlearn.audit.lira import lira
from unlearn.audit.loss_mia import loss_mia
from unlearn.audit.mis import mis
from unlearn.audit.references import check_count, population, reference_logits  # noqa: F401
from unlearn.audit.relearn import relearn
from unlearn.audit.rmia import rmia
from unlearn.audit.ulira import ulira  # noqa: F401
from unlearn.data import Dataset, ForgetSplit, validate_forget
from unlearn.errors import UnlearnInputError
from unlearn.models import logits as model_logits
from unlearn.models.io import check_compatible

# Attack names for `evaluate`; "-offline" variants use OUT reference models only.
ATTACKS = ("acc", "mis", "loss", "rmia", "rmia-offline", "lira", "lira-offline", "confidence", "relearn")
DEFAULT_ATTACKS = ("acc", "mis", "loss", "rmia")
# Fewest reference models each reference attack accepts (pairs of complementary halves).
MIN_REFERENCES = {"rmia": 2, "rmia-offline": 2, "lira": 4, "lira-offline": 4}


def check_model(model, dataset: Dataset, what: str = "model") -> None:
    """Refuse a model made for another dataset: other classes, input shape or training data."""
    spec = getattr(model, "spec", None)
    if spec is None:
        return  # a plain nn.Module: nothing recorded to check against
    check_compatible(spec, dataset, source=what)
    trained_on = (spec.get("training") or {}).get("dataset_fingerprint")
    if trained_on and trained_on != dataset.fingerprint:
        raise UnlearnInputError(f"{what} was trained on another dataset (fingerprint {trained_on}), "
                                f"not on {dataset.name} ({dataset.fingerprint})")


def check_split(split: ForgetSplit, dataset: Dataset, evaluation) -> np.ndarray:
    """Validate forget/retain indices against the training set; return the test-side indices."""
    n_train = len(dataset.train)
    validate_forget(split.forget, n_train, "forget set")
    retain = np.asarray(split.retain)
    if retain.size and (retain.min() < 0 or retain.max() >= n_train):
        raise UnlearnInputError(f"retain set has indices outside the training set [0, {n_train})")
    if evaluation is None:
        return np.arange(len(dataset.test))
    evaluation = np.asarray(evaluation, dtype=np.int64)
    if evaluation.size == 0 or evaluation.min() < 0 or evaluation.max() >= len(dataset.test):
        raise UnlearnInputError(f"evaluation indices must be a non-empty subset of the test split [0, {len(dataset.test)})")
    return evaluation


def evaluate(model, dataset: Dataset, split: ForgetSplit, *, attacks: Sequence[str] = DEFAULT_ATTACKS,
             reference=None, bank=None, n_reference: int = 8, seed: int = 0, device: str | torch.device = "cpu",
             evaluation=None, gamma: float = 2.0, temperature: float = 1.0, taylor_order: int | None = None,
             progress: bool | None = False) -> dict:
    """Audit `model` on `split` of `dataset`; every figure in percent (AUCs included).

    Parameters
    ----------
    attacks : names from `ATTACKS` ("acc" is always computed; the gap needs it).
    reference : the retrained model, or the dict an earlier `evaluate` of it returned; adds "gap"
        (|m − m_retrain| over acc.forget/retain/test, mis.mis and rmia.auc when present, and
        "avg_gap", their mean) and, for "relearn", the retrained model's curve.
    bank : `ModelBank` for reference models (default `ModelBank()`); `n_reference` of them, in pairs.
    evaluation : test-split indices of the test side D_T (e.g. the evaluation half of `split_holdout`).
    gamma, temperature, taylor_order : RMIA's γ and signal: the true-label softmax probability at
        `temperature`, or the Taylor-softmax of that order (AMUN: γ = 2, temperature 2, Taylor).
    """
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise UnlearnInputError(f"unknown attack(s) {unknown}; known: {', '.join(ATTACKS)}")
    check_model(model, dataset)
    test_idx = check_split(split, dataset, evaluation)
    forget, retain = dataset.train.subset(split.forget), dataset.train.subset(split.retain)
    test = dataset.test.subset(test_idx)
    needs_references = [a for a in attacks if a in MIN_REFERENCES]
    for attack in needs_references:
        check_count(n_reference, MIN_REFERENCES[attack], attack)
    if gamma <= 0 or temperature <= 0:
        raise UnlearnInputError(f"RMIA needs gamma > 0 and temperature > 0, got {gamma} and {temperature}")
    if taylor_order is not None and (taylor_order < 2 or taylor_order % 2):
        raise UnlearnInputError(f"Taylor-softmax order must be an even number >= 2, got {taylor_order}")
    if reference is not None and not isinstance(reference, Mapping):
        check_model(reference, dataset, "reference model")
    if next(model.parameters()).device != torch.device(device):
        model = copy.deepcopy(model).to(device)  # audits never change the model they are given

    result: dict = {"acc": accuracies(model, forget, retain, test)}
    if "mis" in attacks:
        result["mis"] = mis(model, forget, retain, test, seed=seed)
    if "loss" in attacks:
        result["loss"] = loss_mia(model, forget, test, seed=seed)
    if needs_references:
        # Pool indices of the audited points: D_F first, then D_T (pool = train + test).
        points = np.r_[np.asarray(split.forget, dtype=np.int64), len(dataset.train) + test_idx]
        is_forget = np.r_[np.ones(len(split.forget), bool), np.zeros(len(test_idx), bool)]
        refs = reference_logits(model, dataset, points, bank=bank, n_reference=n_reference, seed=seed,
                                device=device, progress=progress)
        pool_points = population(dataset).train.subset(points)
        target = model_logits(model, pool_points)
        for attack in needs_references:
            offline = attack.endswith("-offline")
            if attack.startswith("rmia"):
                result[attack] = rmia(target, pool_points.y, refs, is_forget, gamma=gamma, offline=offline,
                                      temperature=temperature, taylor_order=taylor_order)
            else:
                result[attack] = lira(target, pool_points.y, refs, is_forget, offline=offline)
    if "confidence" in attacks:
        result["confidence"] = confidence_distance(model, forget, retain, test)
    if "relearn" in attacks:
        reference_model = reference if reference is not None and not isinstance(reference, Mapping) else None
        result["relearn"] = relearn(model, forget, reference_model, seed=seed, device=device)
        if isinstance(reference, Mapping) and "relearn" in reference:
            result["relearn"]["reference"] = list(reference["relearn"]["model"])
    if reference is not None:
        if not isinstance(reference, Mapping):
            reference = evaluate(reference, dataset, split, attacks=[a for a in attacks if a != "relearn"], bank=bank,
                                 n_reference=n_reference, seed=seed, device=device, evaluation=evaluation,
                                 gamma=gamma, temperature=temperature, taylor_order=taylor_order,
                                 progress=progress)
        flat_reference = flatten(reference)
        keys = [k for k in (*DEFAULT_GAP_KEYS, "rmia.auc") if k in flatten(result) and k in flat_reference]
        result["gap"] = avg_gap(result, flat_reference, keys)
    return result
