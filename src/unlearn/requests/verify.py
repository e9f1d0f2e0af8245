"""Verify one request on one model: is the model, on that request's samples, like models retrained without them?

The oracles are K models (default 4) retrained from scratch with the base architecture and recipe,
from K seeds (the base's seed + 1, ..., + K), on the training set minus every request the audited
model has honoured; the model bank trains each once. Three checks compare the audited model with
them on the request's samples D_F, sample by sample (`unlearn.requests.verdict`):

| check | value per sample of D_F | tolerance (default) | direction |
| --- | --- | --- | --- |
| accuracy | classified correctly | `accuracy_gap` (10 points) | two-sided |
| relearn | classified correctly after the relearning attack (10 SGD steps on a fifth of D_F; measured on the rest) | `relearn_gap` (15 points) | two-sided |
| flagged | flagged as a member by RMIA at 5% false positives on D_T | `flagged_excess` (10 points) | one-sided: flagging fewer is no failure |

A check passes when the model is shown to be within its tolerance of the retrained models (false
pass ≤ 5%), fails when it is shown to differ from them (false fail ≤ 5% over all checks), and is
inconclusive otherwise; the verdict is "consistent with retraining" when every check passes, "not
consistent" when one fails, and "inconclusive" when the request is too small to tell (a one-sample
request always is). D_T is the evaluation half of the test split, the half no method is given. The
certificate also reports the audits' figures (RMIA AUC, Avg. Gap) against the first oracle.

An ensemble written by the exact path (SISA) gets the verdict from its construction instead:
the certificate says "exact" when every step of the lineage was SISA and none of the request's
samples is in the ensemble's training indices.
"""

from __future__ import annotations

import numpy as np

from unlearn import audit, data, models
from unlearn.errors import UnlearnInputError
from unlearn.requests.apply import SISA_FORMAT, deleted_indices, file_format, jsonable, load_dataset
from unlearn.requests.ledger import Ledger
from unlearn.requests.verdict import ALPHA_FAIL, ALPHA_PASS, GREATER, TWO_SIDED, judge, overall

DEFAULT_THRESHOLDS = {"accuracy_gap": 10.0, "relearn_gap": 15.0, "flagged_excess": 10.0}
N_ORACLES = 4
FLAG_FPR = 0.05  # a sample is "flagged" when its score beats 95% of the test split's under the same model
RELEARN_FRACTION = 0.2
CONSISTENT, NOT_CONSISTENT, INCONCLUSIVE = ("consistent with retraining", "not consistent with retraining",
                                            "inconclusive")
VERDICTS = {"pass": CONSISTENT, "fail": NOT_CONSISTENT, "inconclusive": INCONCLUSIVE}


def check_thresholds(thresholds: dict | None) -> dict:
    merged = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    unknown = sorted(set(merged) - set(DEFAULT_THRESHOLDS))
    if unknown:
        raise UnlearnInputError(f"unknown threshold(s) {unknown}; known: {sorted(DEFAULT_THRESHOLDS)}")
    for key, value in merged.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
            raise UnlearnInputError(f"threshold {key} must be a number of points in (0, 100], got {value!r}")
    return {k: float(v) for k, v in merged.items()}


def oracle_seeds(base: dict, n_oracles: int) -> list[int]:
    return [int(base["seed"]) + 1 + k for k in range(n_oracles)]


def retrained_oracles(base: dict, ds, deleted: np.ndarray, bank, n_oracles: int = N_ORACLES, device="cpu") -> list:
    """The base architecture retrained with its recipe from `n_oracles` seeds on the training set minus `deleted`."""
    keep = np.ones(len(ds.train), dtype=bool)
    keep[deleted] = False
    return [bank.get(ds, base["arch"], np.flatnonzero(keep), base["recipe"], seed=seed, device=device,
                     arch_args=base["arch_args"], progress=False, name="retrained oracle")
            for seed in oracle_seeds(base, n_oracles)]


def membership_flags(audited: list, ds, forget: np.ndarray, evaluation: np.ndarray, *, bank, n_reference: int,
                     seed: int, gamma: float = 2.0, device="cpu") -> list[dict]:
    """Per model of `audited`: RMIA scores of the request's samples, and which are flagged as members.

    The same reference models (from the bank, trained like the first model) and the same
    population (the test points `evaluation`) serve every model. A sample is flagged when its score
    exceeds the model's `1 − FLAG_FPR` quantile of scores on the test points (a 5%-FPR attack).
    """
    from unlearn.audit.rmia import RMIASettings, rmia_point_scores

    settings = RMIASettings.of({"gamma": gamma})
    test_points = len(ds.train) + np.asarray(evaluation, dtype=np.int64)
    points = np.r_[np.asarray(forget, dtype=np.int64), test_points]
    is_forget = np.r_[np.ones(len(forget), bool), np.zeros(len(test_points), bool)]
    refs = audit.reference_logits(audited[0], ds, points, bank=bank, n_reference=n_reference, seed=seed,
                                  device=device, queries=settings.queries, progress=False)
    pool_points = audit.population(ds).train.subset(points)
    recipe = audit.training_setup(audited[0], ds)[2]
    out = []
    for m in audited:
        scores, _ = rmia_point_scores(audit.query_logits(m, pool_points, recipe, settings.queries), pool_points.y,
                                      refs, ~is_forget, settings)
        cut = float(np.quantile(scores[~is_forget], 1 - FLAG_FPR))
        out.append({"scores": scores[is_forget], "flagged": scores[is_forget] > cut, "cut": cut})
    return out


def correct(model, points: data.ArrayDataset) -> np.ndarray:
    return (models.logits(model, points).argmax(1) == points.y).numpy()


def assess(model, oracles: list, ds, forget: np.ndarray, evaluation: np.ndarray, *, bank, thresholds: dict,
           n_reference: int = 4, seed: int = 0, device="cpu") -> dict:
    """The three checks of `model` against `oracles` on the training samples `forget`, and the verdict.

    Returns {"verdict", "checks", "per_sample"}; every check holds both tests' figures (`verdict.judge`).
    """
    forget = np.asarray(forget, dtype=np.int64)
    audited = [model, *oracles]
    values = {"accuracy": np.stack([correct(m, ds.train.subset(forget)) for m in audited])}
    if forget.size >= 3:
        from unlearn.audit.relearn import relearn_split, relearned

        train_on, measure_on = relearn_split(forget.size, RELEARN_FRACTION, seed)
        relearn_set, held_out = ds.train.subset(forget[train_on]), ds.train.subset(forget[measure_on])
        values["relearn"] = np.stack([correct(relearned(m, relearn_set, seed=seed, device=device), held_out)
                                      for m in audited])
    flags = membership_flags(audited, ds, forget, evaluation, bank=bank, n_reference=n_reference, seed=seed,
                             device=device)
    values["flagged"] = np.stack([f["flagged"] for f in flags])
    specs = {"accuracy": ("accuracy_gap", TWO_SIDED, "forget accuracy on the request (%)"),
             "relearn": ("relearn_gap", TWO_SIDED, "forget accuracy after 10 relearning steps on a fifth of "
                                                   "the request, on the rest (%)"),
             "flagged": ("flagged_excess", GREATER, f"flagged as members by RMIA at {FLAG_FPR:.0%} FPR (%)")}
    checks = {}
    for name, (key, side, figure) in specs.items():
        if name not in values:
            checks[name] = {"figure": "relearning attack", "skipped": "the request has fewer than 3 samples",
                            "result": "not run", "passed": None}
            continue
        checks[name] = {"figure": figure, **judge(values[name][0], values[name][1:], thresholds[key], side,
                                                  n_checks=len(values))}
    verdict = VERDICTS[overall([c["result"] for c in checks.values() if c["result"] != "not run"])]
    per_sample = [{"index": int(i), "model_score": float(flags[0]["scores"][j]),
                   "model_flagged": bool(flags[0]["flagged"][j]),
                   "retrained_flagged": [bool(f["flagged"][j]) for f in flags[1:]],
                   "model_correct": bool(values["accuracy"][0, j]),
                   "retrained_correct": [bool(v) for v in values["accuracy"][1:, j]]}
                  for j, i in enumerate(forget)]
    return {"verdict": verdict, "checks": checks, "per_sample": per_sample}


def verify_request(ledger: Ledger, request_id: int, model_path, *, thresholds: dict | None = None,
                   n_oracles: int = N_ORACLES, n_reference: int = 4, seed: int = 0, device="cpu", bank=None,
                   data_root=None) -> dict:
    """Audit request `request_id` on the model in `model_path`; return the certificate (a JSON-safe dict)."""
    from unlearn.bank import ModelBank

    thresholds = check_thresholds(thresholds)
    if isinstance(n_oracles, bool) or not isinstance(n_oracles, int) or n_oracles < 2:
        raise UnlearnInputError(f"--oracles must be an integer >= 2 (the tests need a spread), got {n_oracles!r}")
    entries = ledger.entries()
    base = ledger.base(entries)
    request = ledger.request(request_id, entries)
    origin, model_hash = ledger.origin(model_path, entries)
    lineage = ledger.lineage(origin, entries)
    honoured = ledger.honoured(origin, entries)
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
        "format": "unlearn.certificate/2",
        "request": {"id": request.id, "hash": request.hash, "n_samples": int(request.indices.size),
                    "reason": request.reason, "requester": request.requester, "timestamp": request.timestamp},
        "ledger": {"path": str(ledger.path), "head": ledger.head(entries), "entries": len(entries)},
        "model": {"path": str(model_path), "identity": model_hash, "ledger_entry": origin.seq},
        "base": {"identity": base["model_hash"], "dataset": base["dataset"], "arch": base["arch"]},
        "lineage": [{k: step[k] for k in ("requests", "input_hash", "output_hash", "noop", "method",
                                         "hyperparameters", "mode", "exact", "seconds")} for step in lineage],
        "honoured": honoured, "n_deleted": int(deleted.size), "thresholds": thresholds,
    }
    if file_format(model_path) == SISA_FORMAT:
        certificate.update(_exact_evidence(model_path, ds, split, lineage, device))
        return jsonable(certificate)

    model = models.load_model(model_path, ds, device)
    oracles = retrained_oracles(base, ds, deleted, bank, n_oracles, device)
    # D_T is the evaluation half of the test split, the half no method is ever given (apply hands the
    # other half to methods that need known non-members, as `unlearn forget` does).
    evaluation = data.split_holdout(ds.test.y.numpy(), seed=0)[1]
    assessed = assess(model, oracles, ds, request.indices, evaluation, bank=bank, thresholds=thresholds,
                      n_reference=n_reference, seed=seed, device=device)
    # The audits' figures, against the first oracle (what `unlearn audit` reports; not the verdict's).
    attacks = ["acc", "rmia"] + (["relearn"] if request.indices.size >= 3 else [])
    oracle_figures = audit.evaluate(oracles[0], ds, split, attacks=attacks, bank=bank, n_reference=n_reference,
                                    seed=seed, device=device, evaluation=evaluation)
    figures = audit.evaluate(model, ds, split, attacks=attacks, reference=oracle_figures, bank=bank,
                             n_reference=n_reference, seed=seed, device=device, evaluation=evaluation)
    all_deleted, test = data.ForgetSplit(deleted, split.retain), ds.test.subset(evaluation)
    certificate.update({
        "kind": "approximate",
        **assessed,
        "statistics": {"false_pass": ALPHA_PASS, "false_fail": ALPHA_FAIL, "n_oracles": n_oracles,
                       "oracle_seeds": oracle_seeds(base, n_oracles),
                       "pass": "the (1 − false_pass) upper confidence bound of the gap (paired t over the "
                               "request's samples) is below the tolerance",
                       "fail": "the model's count lies in a tail of probability ≤ fail_level of the "
                               "Poisson-binomial predictive of one more retrain (Jeffreys' prior per sample)"},
        "figures": {"model": figures, "retrained": oracle_figures},
        "gap_to_retrained": figures["gap"],
        # The successive setting's figure: accuracy gap on everything deleted so far, not only this request.
        "all_deleted_accuracy_gap": audit.avg_gap(
            audit.accuracies(model, ds.train.subset(all_deleted.forget), ds.train.subset(split.retain), test),
            audit.accuracies(oracles[0], ds.train.subset(all_deleted.forget), ds.train.subset(split.retain), test),
            ("forget", "retain", "test")),
        "retrained": {"n_train": int(split.retain.size), "arch": base["arch"], "seeds": oracle_seeds(base, n_oracles),
                      "recipe": base["recipe"]},
        "settings": {"n_reference": n_reference, "seed": seed, "rmia": audit.RMIASettings().to_dict(),
                     "d_t": f"the evaluation half of the test split ({evaluation.size} samples)"},
    })
    return jsonable(certificate)


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
    for check in checks.values():
        check["result"] = "pass" if check["passed"] else "fail"
    return {"kind": "exact", "verdict": CONSISTENT if passed else NOT_CONSISTENT, "checks": checks,
            "figures": {"model": {"acc": audit.accuracies(module, forget, retain, ds.test)}},
            "exact": {"shards": sisa.shards, "slices": sisa.slices, "deletions": sisa.deletions_,
                      "statement": "exact: every shard that held a deleted sample was retrained from the "
                                   "checkpoint before it; the ensemble is the one SISA trains without them"}}
