"""Audits: did the model really forget? (METHODS.md "Audits"; docs/audits.md).

One small module per measurement: `accuracy` (FA, RA, TA, UA), `mis` (SalUn's MIA-efficacy),
`loss_mia` (NeurIPS 2023 kit), `rmia` and `lira` over reference models from the bank
(`references`, queried on augmented views: `queries`), `ulira` (U-LiRA) and `epsilon` (the NeurIPS
2023 challenge's ε score), which judge a *method* from many models, `gap` (Avg. Gap to retrain,
seeds), `confidence` (distributions and histograms), `relearn` (relearning attack). `evaluate`
runs a chosen set of them on one model and returns every figure in percent:

    report = unlearn.audit.evaluate(model, ds, split, attacks=("acc", "mis", "loss", "rmia"),
                                    reference=retrained, bank=bank)
    report["rmia"]["auc"], report["gap"]["gap-rmia"], report["gap"]["gap-mis"]
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from unlearn.audit.accuracy import accuracies
from unlearn.audit.confidence import confidence_distance, plot_confidence  # noqa: F401
from unlearn.audit.epsilon import bucket_count, epsilon_score
from unlearn.audit.gap import (  # noqa: F401
    DEFAULT_GAP_KEYS,
    GAPS,
    avg_gap,
    clearly_below,
    flatten,
    gap_over_seeds,
    gaps,
    named_gap,
    summarize,
    summarize_runs,
)
from unlearn.audit.lira import lira
from unlearn.audit.loss_mia import loss_mia
from unlearn.audit.mis import mis
from unlearn.audit.references import (  # noqa: F401
    block_size,
    check_count,
    population,
    query_logits,
    reference_logits,
    training_setup,
)
from unlearn.audit.relearn import relearn, with_reference
from unlearn.audit.rmia import RMIASettings, rmia
from unlearn.audit.scores import roc_on_grid
from unlearn.audit.ulira import ulira
from unlearn.data import Dataset, ForgetSplit, validate_forget
from unlearn.errors import UnlearnInputError
from unlearn.models.io import check_compatible

# Attack names for `evaluate`; "-offline" variants use OUT reference models only; "ulira" and
# "epsilon" judge the unlearning method (given as `method=`) from many models of their own.
ATTACKS = ("acc", "mis", "loss", "rmia", "rmia-offline", "lira", "lira-offline", "confidence", "relearn",
           "ulira", "epsilon")
DEFAULT_ATTACKS = ("acc", "mis", "loss", "rmia")
# Fewest reference models each reference attack accepts.
MIN_REFERENCES = {"rmia": 1, "rmia-offline": 2, "lira": 2, "lira-offline": 2}
METHOD_ATTACKS = ("ulira", "epsilon")


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


def forgotten_classes(split: ForgetSplit, dataset: Dataset) -> list[int] | None:
    """The classes of a class-forgetting split (D_F = every training sample of some classes), else None."""
    labels = dataset.train.y.numpy()
    classes = np.unique(labels[np.asarray(split.forget)])
    whole = np.isin(labels, classes).sum() == len(split.forget)
    return classes.tolist() if whole and len(classes) < dataset.num_classes else None


def evaluate(model, dataset: Dataset, split: ForgetSplit, *, attacks: Sequence[str] = DEFAULT_ATTACKS,
             reference=None, bank=None, n_reference: int = 8, seed: int = 0, device: str | torch.device = "cpu",
             evaluation=None, rmia_settings: RMIASettings | dict | None = None, class_forget: bool | None = None,
             method=None, with_retain: bool = True, n_models: int = 8, n_shadow: int = 16, roc: bool = False,
             progress: bool | None = False, **method_context) -> dict:
    """Audit `model` on `split` of `dataset`; every figure in percent (AUCs included).

    Parameters
    ----------
    attacks : names from `ATTACKS` ("acc" is always computed; the gap needs it).
    reference : the retrained model, or the dict an earlier `evaluate` of it returned; adds "gap"
        (|m − m_retrain| per term, and the two Avg. Gaps of `gap.GAPS`: "gap-rmia" over FA, RA, TA
        and RMIA AUC, "gap-mis" over FA, RA, TA and MIS; None when its MIA was not run) and, for
        "relearn", the retrained model's curve.
    bank : `ModelBank` for reference models (default `ModelBank()`); `n_reference` of them, drawn
        with reference seed `seed` (models are shared by every audit with the same seed).
    evaluation : test-split indices of the test side D_T (e.g. the evaluation half of `split_holdout`).
    rmia_settings : `RMIASettings` or a dict of some of its fields (signal, temperature, margin,
        taylor_terms, trim, queries, gamma, offline_a); None: the defaults. Recorded in the result.
        The augmented queries serve LiRA too.
    class_forget : restrict the MIAs' test side to the forgotten classes (so that Retrain scores
        ≈ 50: a model never trained on a class is as unsure on its test images as on its training
        images, but surer on the other classes). None: when D_F is every sample of some classes.
    method, with_retain, n_models, n_shadow, method_context : for "ulira" and "epsilon", the
        unlearning method (an object with `.unlearn`), whether it gets D_R, the number of models of
        each kind for the ε score and of U-LiRA shadow models, and extra context for `.unlearn`.
    roc : also return each reference attack's ROC curve ("fpr", "tpr" on a fixed log grid).
    """
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise UnlearnInputError(f"unknown attack(s) {unknown}; known: {', '.join(ATTACKS)}")
    check_model(model, dataset)
    test_idx = check_split(split, dataset, evaluation)
    settings = RMIASettings.of(rmia_settings)
    needs_references = [a for a in attacks if a in MIN_REFERENCES]
    for attack in needs_references:
        check_count(n_reference, MIN_REFERENCES[attack], attack)
    out_attacks = [a for a in needs_references if a != "rmia"]
    if out_attacks:  # every point must be OUT of some reference model: one whole block of them
        least = block_size(len(dataset.train) + len(dataset.test), len(dataset.train))
        if n_reference < least:
            raise UnlearnInputError(f"{', '.join(out_attacks)} need OUT reference models for every point: at least "
                                    f"{least} on {dataset.name} (references train on {len(dataset.train)} of "
                                    f"{len(dataset.train) + len(dataset.test)} pool points); got n_reference={n_reference}")
    if any(a in METHOD_ATTACKS for a in attacks) and method is None:
        raise UnlearnInputError(f"{', '.join(a for a in attacks if a in METHOD_ATTACKS)} judge an unlearning "
                                f"method: pass method= (CLI: --method NAME)")
    if "epsilon" in attacks:
        bucket_count(n_models)  # refuses too few models before any other audit trains its own
    if reference is not None and not isinstance(reference, Mapping):
        check_model(reference, dataset, "reference model")
    if next(model.parameters()).device != torch.device(device):
        model = copy.deepcopy(model).to(device)  # audits never change the model they are given

    forget, retain = dataset.train.subset(split.forget), dataset.train.subset(split.retain)
    test = dataset.test.subset(test_idx)
    result: dict = {"acc": accuracies(model, forget, retain, test)}
    classes = forgotten_classes(split, dataset) if class_forget is None else (
        np.unique(dataset.train.y.numpy()[np.asarray(split.forget)]).tolist() if class_forget else None)
    mia_idx = test_idx if classes is None else test_idx[np.isin(dataset.test.y.numpy()[test_idx], classes)]
    if mia_idx.size == 0:
        raise UnlearnInputError(f"the test side has no sample of the forgotten classes {classes}")
    mia_test = dataset.test.subset(mia_idx)
    result["test_side"] = {"size": int(mia_idx.size), "classes": classes if classes is not None else "all"}
    if "mis" in attacks:
        result["mis"] = mis(model, forget, retain, test, seed=seed)
    if "loss" in attacks:
        result["loss"] = loss_mia(model, forget, mia_test, seed=seed)
    if needs_references:
        # Pool indices of the audited points: D_F first, then D_T (pool = train + test).
        points = np.r_[np.asarray(split.forget, dtype=np.int64), len(dataset.train) + mia_idx]
        is_forget = np.r_[np.ones(len(split.forget), bool), np.zeros(len(mia_idx), bool)]
        refs = reference_logits(model, dataset, points, bank=bank, n_reference=n_reference, seed=seed,
                                queries=settings.queries, device=device, progress=progress)
        pool_points = population(dataset).train.subset(points)
        target = query_logits(model, pool_points, training_setup(model, dataset)[2], settings.queries)
        for attack in needs_references:
            offline = attack.endswith("-offline")
            if attack.startswith("rmia"):
                out = rmia(target, pool_points.y, refs, is_forget, settings=settings, offline=offline)
                out["settings"] = settings.to_dict()
            else:
                out = lira(target, pool_points.y, refs, is_forget, offline=offline, queries=settings.queries)
            scores = out.pop("scores")
            if roc:
                out.update(roc_on_grid(scores[is_forget], scores[~is_forget]))
            out["n_reference"], out["reference_seed"] = n_reference, seed
            result[attack] = out
    if "confidence" in attacks:
        result["confidence"] = confidence_distance(model, forget, retain, mia_test)
    if "relearn" in attacks:
        reference_model = reference if reference is not None and not isinstance(reference, Mapping) else None
        result["relearn"] = relearn(model, forget, reference_model, seed=seed, device=device)
        if isinstance(reference, Mapping) and "relearn" in reference:
            with_reference(result["relearn"], reference["relearn"]["model"])
    if any(a in METHOD_ATTACKS for a in attacks):
        arch, arch_args, recipe = training_setup(model, dataset)
        if "ulira" in attacks:
            result["ulira"] = ulira(method, dataset, arch, arch_args=arch_args, recipe=recipe, bank=bank,
                                    n_shadow=n_shadow, forget_size=len(split.forget), seed=seed, device=device,
                                    progress=progress, **method_context)
        if "epsilon" in attacks:
            result["epsilon"] = epsilon_score(method, dataset, split, arch, recipe, arch_args=arch_args, bank=bank,
                                              n_models=n_models, with_retain=with_retain, test=test, device=device,
                                              progress=progress, **method_context)
    if reference is not None:
        if not isinstance(reference, Mapping):
            reference = evaluate(reference, dataset, split, bank=bank, n_reference=n_reference, seed=seed,
                                 attacks=[a for a in attacks if a != "relearn" and a not in METHOD_ATTACKS],
                                 device=device, evaluation=evaluation, rmia_settings=settings,
                                 class_forget=class_forget, progress=progress)
        result["gap"] = gaps(result, reference)
    return result
