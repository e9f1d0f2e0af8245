"""Verify one request on one model: is the model, on that request's samples, like one retrained without them?

The oracle is the model retrained from scratch (base architecture, recipe and seed) on the
training set minus every request the audited model has honoured, from the model bank (trained
once). Both models are audited on the request's samples D_F against the test split D_T with the
project's audits (`unlearn.audit.evaluate`) on the evaluation half of the test split (the half no
method is given), and four checks decide the verdict:

| check | figure | passes when |
| --- | --- | --- |
| accuracy | forget accuracy on D_F | |model − retrained| ≤ `accuracy_gap` points |
| rmia | RMIA AUC of D_F vs D_T | |model − retrained| ≤ `rmia_auc_gap` points |
| relearn | forget accuracy on held-out D_F after the relearning attack | |model − retrained| ≤ `relearn_gap` points |
| scores | per-sample RMIA membership scores of D_F | share flagged as members − the retrained model's share ≤ `flagged_excess` points |

The verdict is "consistent with retraining" when every check that ran passes, "not consistent"
otherwise. The defaults are wide on purpose, because requests are small and every figure on a
few dozen samples is noisy (one sample of 40 moves an accuracy by 2.5 points; the RMIA AUC's
standard error on 40 members is about 4.5 points): they separate a model that kept its members
(a do-nothing model on mnist1d is 20+ points off on forget accuracy) from one that forgot them,
not two good unlearners. A sample is flagged as a member by a model when its RMIA score exceeds
the 95th percentile of that model's scores on the test split (an attack at 5% false positives):
the retrained model flags about 5% of the request's samples, a model that kept them many more.
State tighter thresholds for larger requests (`thresholds=`); every
certificate records the ones that decided it. The relearning check needs ≥ 3 samples (it
relearns on a fifth of them and measures the rest); a smaller request skips it, and says so.

An ensemble written by the exact path (SISA) gets the verdict from its construction instead:
the certificate says "exact" when every step of the lineage was SISA and none of the request's
samples is in the ensemble's training indices.
"""

from __future__ import annotations

import numpy as np

from unlearn import audit, data, models
from unlearn.errors import UnlearnInputError
from unlearn.requests.apply import SISA_FORMAT, deleted_indices, file_format, jsonable, load_dataset
from unlearn.requests.ledger import Ledger, file_content_hash

DEFAULT_THRESHOLDS = {"accuracy_gap": 10.0, "rmia_auc_gap": 10.0, "relearn_gap": 15.0, "flagged_excess": 15.0}
FLAG_FPR = 0.05  # a sample is "flagged" when its score beats 95% of the test split's under the same model
CONSISTENT, NOT_CONSISTENT = "consistent with retraining", "not consistent with retraining"


def check_thresholds(thresholds: dict | None) -> dict:
    merged = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    unknown = sorted(set(merged) - set(DEFAULT_THRESHOLDS))
    if unknown:
        raise UnlearnInputError(f"unknown threshold(s) {unknown}; known: {sorted(DEFAULT_THRESHOLDS)}")
    for key, value in merged.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise UnlearnInputError(f"threshold {key} must be a number >= 0, got {value!r}")
    return {k: float(v) for k, v in merged.items()}


def retrained_oracle(base: dict, ds, deleted: np.ndarray, bank, device="cpu"):
    """The base architecture retrained with its recipe and seed on the training set minus `deleted`."""
    keep = np.ones(len(ds.train), dtype=bool)
    keep[deleted] = False
    return bank.get(ds, base["arch"], np.flatnonzero(keep), base["recipe"], seed=base["seed"], device=device,
                    arch_args=base["arch_args"], progress=False, name="retrained oracle")


def membership_scores(model, oracle, ds, split: data.ForgetSplit, evaluation: np.ndarray, *, bank,
                      n_reference: int, seed: int, gamma: float = 2.0, device="cpu") -> list[dict]:
    """Per-sample RMIA scores of the request's samples under `model` and under `oracle`, and flags.

    The same reference models (from the bank) and the same population (the test points
    `evaluation`) serve both. Per model: the request's scores, and which of them exceed the model's `1 − FLAG_FPR`
    quantile of scores on the test split (flagged as members by a 5%-FPR attack).
    """
    from unlearn.audit.rmia import RMIASettings, rmia_point_scores

    settings = RMIASettings.of({"gamma": gamma})
    test_points = len(ds.train) + np.asarray(evaluation, dtype=np.int64)
    points = np.r_[np.asarray(split.forget, dtype=np.int64), test_points]
    is_forget = np.r_[np.ones(len(split.forget), bool), np.zeros(len(test_points), bool)]
    refs = audit.reference_logits(model, ds, points, bank=bank, n_reference=n_reference, seed=seed, device=device,
                                  queries=settings.queries, progress=False)
    pool_points = audit.population(ds).train.subset(points)
    recipe = audit.training_setup(model, ds)[2]
    out = []
    for m in (model, oracle):
        scores, _ = rmia_point_scores(audit.query_logits(m, pool_points, recipe, settings.queries), pool_points.y,
                                      refs, ~is_forget, settings)
        cut = float(np.quantile(scores[~is_forget], 1 - FLAG_FPR))
        out.append({"scores": scores[is_forget], "flagged": scores[is_forget] > cut, "cut": cut})
    return out


def verify_request(ledger: Ledger, request_id: int, model_path, *, thresholds: dict | None = None,
                   n_reference: int = 4, seed: int = 0, device="cpu", bank=None, data_root=None) -> dict:
    """Audit request `request_id` on the model in `model_path`; return the certificate (a JSON-safe dict)."""
    from unlearn.bank import ModelBank

    thresholds = check_thresholds(thresholds)
    entries = ledger.entries()
    base = ledger.base(entries)
    request = ledger.request(request_id, entries)
    model_hash = file_content_hash(model_path)
    lineage = ledger.lineage(model_hash, entries)
    honoured = [i for step in lineage for i in step["requests"]]
    if request_id not in honoured:
        raise UnlearnInputError(f"model {model_hash[:12]} has not honoured request {request_id} "
                                f"(it honoured: {', '.join(map(str, honoured)) or 'none'}); apply it first")
    ds = load_dataset(base, data_root)
    bank = bank if bank is not None else ModelBank()
    deleted = np.flatnonzero(deleted_indices([r for r in ledger.requests(entries) if r.id in honoured], len(ds.train)))
    keep = np.ones(len(ds.train), dtype=bool)
    keep[deleted] = False
    split = data.ForgetSplit(request.indices, np.flatnonzero(keep).astype(np.int64))
    certificate = {
        "format": "unlearn.certificate/1",
        "request": {"id": request.id, "hash": request.hash, "n_samples": int(request.indices.size),
                    "reason": request.reason, "requester": request.requester, "timestamp": request.timestamp},
        "ledger": {"path": str(ledger.path), "head": ledger.head(entries), "entries": len(entries)},
        "model": {"path": str(model_path), "content_hash": model_hash},
        "base": {"content_hash": base["model_hash"], "dataset": base["dataset"], "arch": base["arch"]},
        "lineage": [{k: step[k] for k in ("requests", "input_hash", "output_hash", "method", "hyperparameters",
                                         "mode", "exact", "seconds")} for step in lineage],
        "honoured": honoured, "n_deleted": int(deleted.size), "thresholds": thresholds,
    }
    if file_format(model_path) == SISA_FORMAT:
        certificate.update(_exact_evidence(model_path, ds, split, lineage, device))
        return jsonable(certificate)

    model = models.load_model(model_path, ds, device)
    oracle = retrained_oracle(base, ds, deleted, bank, device)
    attacks = ["acc", "rmia"] + (["relearn"] if request.indices.size >= 3 else [])
    # D_T is the evaluation half of the test split, the half no method is ever given (apply hands the
    # other half to methods that need known non-members, as `unlearn forget` does).
    evaluation = data.split_holdout(ds.test.y.numpy(), seed=0)[1]
    # The oracle's figures first, then the model's against them (its relearning curve included).
    oracle_figures = audit.evaluate(oracle, ds, split, attacks=attacks, bank=bank, n_reference=n_reference,
                                    seed=seed, device=device, evaluation=evaluation)
    figures = audit.evaluate(model, ds, split, attacks=attacks, reference=oracle_figures, bank=bank,
                             n_reference=n_reference, seed=seed, device=device, evaluation=evaluation)
    model_scores, oracle_scores = membership_scores(model, oracle, ds, split, evaluation, bank=bank,
                                                    n_reference=n_reference, seed=seed, device=device)
    checks = {
        "accuracy": _check(figures["acc"]["forget"], oracle_figures["acc"]["forget"], thresholds["accuracy_gap"],
                           "forget accuracy on the request (%)"),
        "rmia": _check(figures["rmia"]["auc"], oracle_figures["rmia"]["auc"], thresholds["rmia_auc_gap"],
                       "RMIA AUC, request vs D_T (%)"),
    }
    if "relearn" in figures:
        checks["relearn"] = _check(figures["relearn"]["model"][-1], figures["relearn"]["reference"][-1],
                                   thresholds["relearn_gap"],
                                   f"forget accuracy after {len(figures['relearn']['steps']) - 1} relearning steps (%)")
    else:
        checks["relearn"] = {"figure": "relearning attack", "skipped": "the request has fewer than 3 samples",
                             "passed": None}
    checks["scores"] = _check(100.0 * model_scores["flagged"].mean(), 100.0 * oracle_scores["flagged"].mean(),
                              thresholds["flagged_excess"],
                              f"flagged as members by RMIA at {FLAG_FPR:.0%} FPR (%)", one_sided=True)
    ran = [c["passed"] for c in checks.values() if c["passed"] is not None]
    all_deleted, test = data.ForgetSplit(deleted, split.retain), ds.test.subset(evaluation)
    certificate.update({
        "kind": "approximate",
        "verdict": CONSISTENT if all(ran) else NOT_CONSISTENT,
        "checks": checks,
        "figures": {"model": figures, "retrained": oracle_figures},
        "gap_to_retrained": figures["gap"],
        # The successive setting's figure: accuracy gap on everything deleted so far, not only this request.
        "all_deleted_accuracy_gap": audit.avg_gap(
            audit.accuracies(model, ds.train.subset(all_deleted.forget), ds.train.subset(split.retain), test),
            audit.accuracies(oracle, ds.train.subset(all_deleted.forget), ds.train.subset(split.retain), test),
            ("forget", "retain", "test")),
        "retrained": {"n_train": int(split.retain.size), "arch": base["arch"], "seed": base["seed"],
                      "recipe": base["recipe"]},
        "per_sample": [{"index": int(i), "model_score": float(a), "model_flagged": bool(fa),
                        "retrained_score": float(b), "retrained_flagged": bool(fb)}
                       for i, a, fa, b, fb in zip(request.indices, model_scores["scores"], model_scores["flagged"],
                                                  oracle_scores["scores"], oracle_scores["flagged"])],
        "settings": {"n_reference": n_reference, "seed": seed, "rmia": audit.RMIASettings().to_dict(),
                     "d_t": f"the evaluation half of the test split ({evaluation.size} samples)"},
    })
    return jsonable(certificate)


def _check(model_value: float, retrained_value: float, threshold: float, figure: str, one_sided: bool = False) -> dict:
    """|model − retrained| ≤ threshold; `one_sided`: only model − retrained (flagging fewer is no failure)."""
    gap = float(model_value) - float(retrained_value)
    gap = gap if one_sided else abs(gap)
    return {"figure": figure, "model": float(model_value), "retrained": float(retrained_value), "gap": gap,
            "threshold": threshold, "passed": bool(gap <= threshold)}


def _exact_evidence(model_path, ds, split: data.ForgetSplit, lineage: list[dict], device) -> dict:
    """SISA: the request's samples are in no shard's training data, and every step was exact."""
    from unlearn.methods.sisa import SISA

    sisa = SISA.load(model_path, ds, device)
    if not hasattr(sisa, "checkpoints_"):
        raise UnlearnInputError(f"{model_path}: SISA ensemble saved without its training indices")
    still_in = np.intersect1d(split.forget, sisa.indices_)
    # The ensemble was trained from scratch (without what its input model had honoured) at its first
    # SISA step; only what happened from there on bears on it.
    first = next(k for k, step in enumerate(lineage) if step["exact"])
    all_exact = all(step["exact"] for step in lineage[first:])
    forget, retain = ds.train.subset(split.forget), ds.train.subset(split.retain)
    module = sisa.as_module()
    checks = {
        "exact_lineage": {"figure": "every step since the ensemble was trained from scratch was exact (SISA)",
                          "passed": bool(all_exact)},
        "not_trained_on": {"figure": "request's samples in the ensemble's training indices",
                           "count": int(still_in.size), "passed": bool(still_in.size == 0)},
    }
    passed = all(c["passed"] for c in checks.values())
    return {"kind": "exact", "verdict": CONSISTENT if passed else NOT_CONSISTENT, "checks": checks,
            "figures": {"model": {"acc": audit.accuracies(module, forget, retain, ds.test)}},
            "exact": {"shards": sisa.shards, "slices": sisa.slices, "deletions": sisa.deletions_,
                      "statement": "exact: every shard that held a deleted sample was retrained from the "
                                   "checkpoint before it; the ensemble is the one SISA trains without them"}}
