"""The jobs of a language-model bench: what one table row of an LM protocol runs, in any process.

The LM counterpart of `unlearn.experiments.jobs`, with the same `RunJob` (one method on one
model, forget set and setting), the same reference rows (`retrain` the oracle, `retrain-floor`
a second retrain from seed + 1000, `original` the untouched model) and the same record shape, so
the results store, the summary, the verdicts and the HTML report take LM runs unchanged.

What differs from a classifier job:
- Models never cross a process boundary: every job takes its models from the model bank by key
  (`unlearn.lm.models.bank_lm`: corpus digest, entity set, recipe, seed), where the training
  stage put them. So a Ray task receives a few ids and a corpus name, never weights.
- The holdout entities (never trained on by any model) are split in three fixed parts: one given
  to the methods as known non-members (SG's auditor, `holdout=`), one the non-members of the
  evaluation audit's Min-K%++ attack, one those of the tuning audit. No method is scored on the
  non-members it trained against, and no tuning score depends on an evaluation non-member (the
  classifier bench does the same with the test split's halves and its validation half).
- Tuning (procedure 5, as classifiers): its forget sets are prefixes of one permutation of the
  trainable entities drawn with `tune.forget_seed`, and its models have `tune.model_seed`; the
  evaluation forget sets are drawn outside the largest tuning set, so changing them changes no
  tuning score.
- The audit is `unlearn.lm.audit.evaluate_lm` against the oracle's report; its gap is gap-lm.
- A method unlearns from the forget entities' trained questions (TOFU's forget set: QA pairs),
  with the retained entities' trained questions as D_R in the `with_retain` setting.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from unlearn.errors import DivergenceError, UnlearnInputError
from unlearn.experiments.jobs import FLOOR, ORACLE, ORIGINAL, RunJob, draw_jobs, draw_units, floor_seed
from unlearn.experiments.lm_config import LMConfig
from unlearn.experiments.provenance import record_environment

HIST_BINS = 20


@dataclass
class LMPlan:
    config: LMConfig
    corpus: Any                        # unlearn.lm.corpus.Corpus
    splits: dict[tuple[str, int], Any]  # (forget label, seed) -> LMSplit, its holdout the audited half
    given: tuple[str, ...]             # holdout entities given to methods as known non-members
    oracle: list[RunJob]
    runs: list[RunJob]
    not_applicable: list[RunJob]
    units: list[tuple[tuple[str, int], int]]  # ((forget label, forget seed), model seed) of every draw

    def originals(self) -> list[int]:
        return list(self.config.seeds)

    def retrains(self) -> list[tuple[tuple[str, int], int]]:
        return list(self.units)

    def floors(self) -> list[tuple[tuple[str, int], int]]:
        return self.retrains() if FLOOR in self.config.reference_rows else []


_CORPORA: dict[tuple[str, int], Any] = {}


def corpus_of(name: str, seed: int = 0):
    """The protocol's corpus, generated once per process (Ray workers run many jobs)."""
    from unlearn.lm import corpus

    if (name, seed) not in _CORPORA:
        _CORPORA[(name, seed)] = corpus.load(name, seed)
    return _CORPORA[(name, seed)]


def holdout_parts(corpus) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(given to methods, evaluation non-members, tuning non-members): the corpus's fixed holdout
    entities, dealt in turn."""
    ids = sorted(corpus.holdout)
    if len(ids) < 3:
        raise UnlearnInputError(f"corpus {corpus.name!r} has {len(ids)} holdout entities; a bench needs at least 3 "
                                f"(for the methods, the evaluation audit and the tuning audit)")
    return tuple(ids[0::3]), tuple(ids[1::3]), tuple(ids[2::3])


def tuning_forget_ids(config: LMConfig, corpus) -> dict[str, tuple[str, ...]]:
    """The tuning forget set of each forget family, by label: prefixes of one permutation of the
    trainable entities drawn with `tune.forget_seed`, so they nest (the largest holds them all)."""
    from unlearn.lm.corpus import forget_count

    trainable = corpus.trainable
    order = np.random.default_rng([config.tune.forget_seed, len(trainable)]).permutation(len(trainable))
    return {spec.label: tuple(sorted(trainable[i] for i in order[:forget_count(corpus, spec.fraction)]))
            for spec in config.forget}


def lm_context_digest(config: LMConfig, corpus) -> str:
    blob = {"corpus": corpus.digest(), "recipe": config.lm_recipe.to_dict(),
            "forget": [f.model_dump() for f in config.forget], "audit": config.audit.model_dump()}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def resolve_lm(config: LMConfig, tuned: dict[tuple[str, str, str], dict] | None = None, *,
               tuning: bool = False) -> LMPlan:
    """Every job of an LM protocol, the oracle first, then the reference rows and the methods.

    `tuning`: `config` is a tuning protocol (`lm_bench.lm_tuning_protocol`): its forget sets are
    the tuning sets (`tuning_forget_ids`) and its audit's non-members the tuning part of the holdout.
    Otherwise the forget sets are drawn outside the tuning sets whenever the protocol tunes."""
    from unlearn.lm import corpus as lm_corpus
    from unlearn.lm import methods

    corpus = corpus_of(config.corpus, config.corpus_seed)
    given, evaluated, tuned_on = holdout_parts(corpus)
    reserved = tuning_forget_ids(config, corpus) if tuning or config.tune.trials else {}
    largest = max(reserved.values(), key=len, default=())
    splits = {}
    for spec in config.forget:
        for seed in spec.seeds:
            if tuning:
                split = lm_corpus.split_from_ids(corpus, reserved[spec.label], seed=seed)
            else:
                split = lm_corpus.forget_split(corpus, spec.fraction, seed, exclude=largest)
            splits[(spec.label, seed)] = dataclasses.replace(split, holdout=tuned_on if tuning else evaluated)
    context = lm_context_digest(config, corpus)
    units = draw_units(config)
    oracle, runs, not_applicable = draw_jobs(config, units, context, methods.get_class, tuned)
    return LMPlan(config, corpus, splits, given, oracle, runs, not_applicable,
                  [((label, f), m) for label, f, m, _ in units])


def model_entities(plan_or_corpus, job_method: str, split) -> tuple[str, ...]:
    """The entities the job's starting model trained on: the retained ones for the oracle and the
    floor, every trainable entity for the original (which every method starts from)."""
    corpus = getattr(plan_or_corpus, "corpus", plan_or_corpus)
    return tuple(split.retain) if job_method in (ORACLE, FLOOR) else tuple(corpus.trainable)


def lm_train_job(corpus_spec: tuple, entities: list[str], recipe: dict, seed: int, bank_root: str,
                 device: str = "cpu", name: str = "training") -> dict[str, Any]:
    """Train one model into the bank (unless it is there); return its recorded training time.
    `name` labels the job in timings.json (`executors.timed_call`)."""
    from unlearn.bank import ModelBank
    from unlearn.lm.models import LMRecipe, bank_lm, lm_key

    corpus = corpus_of(*corpus_spec)
    bank, recipe = ModelBank(bank_root), LMRecipe(**recipe)
    bank_lm(corpus, entities, seed=seed, recipe=recipe, device=device, bank=bank)
    return {"seconds": bank.lookup(lm_key(corpus, entities, recipe, seed))[1]}


def _examples(corpus, entities) -> list:
    return [q.example() for q in corpus.questions(entities, held_out=False)]


def _curves(model, tokenizer, corpus, split, max_questions: int | None) -> dict[str, Any]:
    """Histograms of the answer probability P(answer | question)^(1/len) on retain, forget and
    holdout questions: the LM's "true-class confidence" (the report draws them beside Retrain's)."""
    from unlearn.lm.audit import _sample as sample
    from unlearn.lm.audit import answer_probability

    parts = {"retain": split.retain, "forget": split.forget, "test": split.holdout}
    edges = np.linspace(0, 1, HIST_BINS + 1)
    hist = {}
    for part, entities in parts.items():
        examples = [q.example() for q in sample(corpus.questions(entities, held_out=False), max_questions, 0)]
        probability = answer_probability(model, tokenizer, examples) if examples else np.zeros(0)
        hist[part] = np.histogram(np.asarray(probability), bins=edges)[0].tolist()
    return {"hist": hist, "hist_edges": edges.tolist(), "roc": {}}


def _flat(metrics: dict) -> dict[str, Any]:
    """The table's figures: every number of the audit by dotted key (lists, e.g. the forget set's
    per-question truth ratios, stay in `metrics` only)."""
    from unlearn.audit.gap import flatten

    return {k: v for k, v in flatten(metrics).items() if v is None or isinstance(v, int | float)}


def _relearn(model, tokenizer, corpus, split, recipe, spec: dict, reference: dict | None) -> dict:
    """Both relearning attacks at the protocol's budget, with the recovery above Retrain's (the
    oracle's own `relearn`; for the oracle itself, 0 at every budget)."""
    from unlearn.lm.audit.relearn import RelearnSettings, relearning, relearning_recovery

    settings = RelearnSettings.for_recipe(recipe, passes=tuple(spec["passes"]), lr_share=spec["lr_share"],
                                          fraction=spec["fraction"], batch_size=spec["batch_size"])
    result = relearning(model, tokenizer, corpus, split, settings)
    result["recovery"] = relearning_recovery(result, result if reference is None else reference["relearn"])
    return result


def lm_run_job(job: RunJob, corpus_spec: tuple, split, given: tuple[str, ...], recipe: dict, audit_spec: dict,
               reference: dict | None, retrain_seconds: float, bank_root: str, device: str = "cpu") -> dict[str, Any]:
    """Unlearn (unless `job` is a reference row) and audit; return the job's JSON record.

    `reference` is the oracle's metrics (None for the oracle job itself: its own reference).
    """
    from unlearn.bank import ModelBank
    from unlearn.lm import methods
    from unlearn.lm.audit import add_reference, evaluate_lm
    from unlearn.lm.models import LMRecipe, bank_lm

    corpus = corpus_of(*corpus_spec)
    split = dataclasses.replace(split, forget=tuple(split.forget), neighbour=tuple(split.neighbour),
                                retain=tuple(split.retain), holdout=tuple(split.holdout))
    seed = floor_seed(job.model_seed) if job.method == FLOOR else job.model_seed
    model, tokenizer = bank_lm(corpus, model_entities(corpus, job.method, split), seed=seed,
                               recipe=LMRecipe(**recipe), device=device, bank=ModelBank(bank_root))
    record: dict[str, Any] = {"id": job.id, **job.describe(), "retrain_seconds": retrain_seconds}
    if job.method in (ORACLE, FLOOR, ORIGINAL):
        record.update(status="ok", seconds=0.0 if job.method == ORIGINAL else retrain_seconds, stats=None)
        unlearned = model
    else:
        method = methods.get(job.method, **job.hparams)
        forget = _examples(corpus, split.forget)
        retain = _examples(corpus, split.retain) if job.setting == "with_retain" else None
        start = time.perf_counter()
        try:
            unlearned = method.unlearn(model, tokenizer, forget, retain, seed=job.run_seed, device=device,
                                       holdout=_examples(corpus, given))
        except (DivergenceError, UnlearnInputError) as err:
            record.update(status="failed", error=f"{type(err).__name__}: {err}",
                          seconds=time.perf_counter() - start, environment=record_environment(device))
            return record
        record.update(status="ok", seconds=time.perf_counter() - start, stats=getattr(method, "stats_", None))
    start = time.perf_counter()
    settings = {"max_questions": audit_spec.get("max_questions"), "k": audit_spec.get("k", 0.2),
                "prefix_tokens": audit_spec.get("prefix_tokens", 32)}
    with torch.no_grad():
        metrics = evaluate_lm(unlearned, tokenizer, corpus, split, reference=reference, **settings)
        if reference is None:  # the oracle: its own reference (forget quality 1, PrivLeak 0, gap 0)
            add_reference(metrics, copy.deepcopy(metrics))
        curves = _curves(unlearned, tokenizer, corpus, split, settings["max_questions"])
    if audit_spec.get("relearn"):
        metrics["relearn"] = _relearn(unlearned, tokenizer, corpus, split, LMRecipe(**recipe), audit_spec["relearn"],
                                      reference)
    record["audit_seconds"] = time.perf_counter() - start
    record.update(metrics=metrics, flat=_flat(metrics), sizes=dict(metrics["sizes"]),
                  environment=record_environment(device), **curves)
    return record
