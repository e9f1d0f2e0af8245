"""Audits of language-model unlearning, as TOFU and MUSE define them (docs/audits.md, "Language models").

One short module per measurement: `answers` (exact-answer accuracy, answer probability),
`truth_ratio` (TOFU's truth ratio and forget quality), `utility` (perplexity, TOFU's model
utility), `memorisation` (MUSE's VerbMem and KnowMem, ROUGE-L), `mink` (the Min-K%++ membership
attack), `privleak` (MUSE's PrivLeak), `gap` (gap-lm, the gap to Retrain in gap-rmia's units).
`evaluate_lm` runs them all on one model over a corpus and its split and returns every figure,
nested like `unlearn.audit.evaluate`'s output:

    report = evaluate_lm(model, tokenizer, corpus, split, reference=retrained)   # or its report
    report["acc"]["forget"], report["truth_ratio"]["forget"], report["forget_quality"],
    report["privleak"], report["gap"]["gap-lm"]

Units: accuracies, AUCs, ROUGE scores (VerbMem, KnowMem) and PrivLeak in percent, as the papers
report them; probabilities, truth-ratio scores, model utility and forget quality (a p-value) in
[0, 1]; perplexity as is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from unlearn.errors import UnlearnInputError
from unlearn.lm.audit.answers import AnswerSet, answer_accuracy, answer_probability, answer_set, normalise
from unlearn.lm.audit.gap import GAP_LM, TERMS, lm_gaps, term_standard_errors
from unlearn.lm.audit.memorisation import (
    PREFIX_TOKENS,
    knowledge_memorisation,
    knowmem_score,
    rouge_l,
    verbatim_memorisation,
)
from unlearn.lm.audit.mink import K, mia_auc, min_k_plus_plus
from unlearn.lm.audit.privleak import priv_leak
from unlearn.lm.audit.truth_ratio import forget_quality, forget_score, retain_score, truth_ratio
from unlearn.lm.audit.utility import model_utility, perplexity

# TOFU evaluates retained knowledge on 400 retain questions; a set larger than this is audited on
# a fixed sample of it (the same for every model of a split and seed, so gaps pair question by question).
MAX_QUESTIONS = 400
QUESTION_SETS = ("forget", "forget_paraphrased", "neighbour", "retain", "holdout")


def _sample(items: list, limit: int | None, seed: int) -> list:
    if limit is None or len(items) <= limit:
        return items
    keep = np.sort(np.random.default_rng([seed, 25]).choice(len(items), limit, replace=False))
    return [items[i] for i in keep]


def mia_texts(corpus, split) -> tuple[list[str], list[str]]:
    """(members, non-members) for the MIA: everything a model trained on the forget entities saw
    about them, and the same texts of the holdout entities (general text, shared by all, left out)."""
    general = set(corpus.training_texts(()))
    members = [t for t in corpus.training_texts(split.forget) if t not in general]
    # The corpus refuses to render its holdout entities as training data (no model trains on
    # them); a copy without a holdout renders them exactly as it would any trained entity.
    as_if_trained = dataclasses.replace(corpus, holdout=())
    nonmembers = [t for t in as_if_trained.training_texts(split.holdout) if t not in general] if split.holdout else []
    return members, nonmembers


def evaluate_lm(model, tokenizer, corpus, split, *, reference=None, max_questions: int | None = MAX_QUESTIONS,
                k: float = K, prefix_tokens: int = PREFIX_TOKENS, seed: int = 0, batch_size: int = 64) -> dict:
    """Every LM audit of `model` on `split` of `corpus` (an `unlearn.lm.corpus.Corpus` and `LMSplit`).

    Parameters
    ----------
    reference : the retrained model (same tokenizer), a (model, tokenizer) pair, or the dict an
        earlier `evaluate_lm` of it returned (same corpus, split and settings); adds
        "forget_quality" (KS p-value of the truth ratios on D_F), "privleak" and "gap" (per term
        |Δ| and "gap-lm").
    max_questions : questions per set at most (a fixed sample beyond it; None: all).
    k : Min-K%++'s share of lowest-scoring tokens. prefix_tokens : VerbMem's prompt length.
    seed : the question sample's seed.
    """
    if not split.forget:
        raise UnlearnInputError("the split forgets nothing")
    held = {"forget": False, "forget_paraphrased": True, "neighbour": False, "retain": False, "holdout": False}
    entities = {"forget": split.forget, "forget_paraphrased": split.forget, "neighbour": split.neighbour,
                "retain": split.retain, "holdout": split.holdout}
    questions = {name: _sample(corpus.questions(entities[name], held_out=held[name]), max_questions, seed)
                 for name in QUESTION_SETS if entities[name]}
    questions = {name: items for name, items in questions.items() if items}
    answers = {name: answer_set(model, tokenizer, [q.example() for q in items], batch_size)
               for name, items in questions.items()}
    result: dict = {"acc": {name: a.accuracy for name, a in answers.items()},
                    "prob": {name: float(a.probability.mean()) for name, a in answers.items()},
                    "knowmem": {name: knowmem_score(answers[name]) for name in ("forget", "retain") if name in answers}}
    ratios = {name: truth_ratio(model, tokenizer, questions[name], batch_size)
              for name in ("forget", "neighbour", "retain") if name in questions}
    if ratios:
        result["truth_ratio"] = {name: (forget_score if name == "forget" else retain_score)(r)
                                 for name, r in ratios.items()}
        if "forget" in ratios:
            result["truth_ratio"]["forget_values"] = ratios["forget"].tolist()
    parts = {}
    for name in ("retain", "neighbour"):
        if name in answers:
            recall = rouge_l(answers[name].references, answers[name].answers, stem=True)[0]
            parts.update({f"{name}_probability": float(answers[name].probability.mean()),
                          f"{name}_rouge": float(recall.mean()), f"{name}_truth_ratio": retain_score(ratios[name])})
    if parts:
        result["utility"] = {"model_utility": model_utility(parts), "parts": parts}
    general = {"general": [t.text for t in corpus.general if not t.held_out],
               "general_heldout": [t.text for t in corpus.general if t.held_out]}
    result["perplexity"] = {name: perplexity(model, tokenizer, texts, batch_size) for name, texts in general.items() if texts}
    bios = [t.text for t in corpus.texts(split.forget)]
    if bios:
        result["verbmem"] = {"forget": verbatim_memorisation(model, tokenizer, bios, prefix_tokens, batch_size=batch_size)}
    members, nonmembers = mia_texts(corpus, split)
    if members and nonmembers:
        result["minkpp"] = {**mia_auc(model, tokenizer, members, nonmembers, k), "k": k}
    result["sizes"] = {**{name: len(items) for name, items in questions.items()},
                       "mia_members": len(members), "mia_nonmembers": len(nonmembers), "forget_texts": len(bios)}
    if reference is not None:
        if not isinstance(reference, Mapping):
            ref_model, ref_tokenizer = reference if isinstance(reference, tuple) else (reference, tokenizer)
            reference = evaluate_lm(ref_model, ref_tokenizer, corpus, split, max_questions=max_questions, k=k,
                                    prefix_tokens=prefix_tokens, seed=seed, batch_size=batch_size)
        add_reference(result, reference)
    return result


def add_reference(result: dict, reference: Mapping) -> dict:
    """Forget quality, PrivLeak and the gap of `result` against the retrained model's report."""
    if reference.get("sizes") != result.get("sizes"):
        raise UnlearnInputError(f"the reference was audited on other question or text sets ({reference.get('sizes')} "
                                f"against {result.get('sizes')}); audit both on the same corpus, split and settings")
    forget_ratios = (result.get("truth_ratio") or {}).get("forget_values")
    reference_ratios = (reference.get("truth_ratio") or {}).get("forget_values")
    if forget_ratios is not None and reference_ratios is not None:
        result["forget_quality"] = forget_quality(forget_ratios, reference_ratios)
    if "minkpp" in result and "minkpp" in reference:
        result["privleak"] = priv_leak(result["minkpp"]["auc"], reference["minkpp"]["auc"])
    result["gap"] = lm_gaps(result, reference)
    return result


__all__: Sequence[str] = (
    "AnswerSet", "GAP_LM", "TERMS", "add_reference", "answer_accuracy", "answer_probability", "answer_set",
    "evaluate_lm", "forget_quality", "forget_score", "knowledge_memorisation", "knowmem_score", "lm_gaps",
    "mia_auc", "mia_texts", "min_k_plus_plus", "model_utility", "normalise", "perplexity", "priv_leak",
    "retain_score", "rouge_l", "term_standard_errors", "truth_ratio", "verbatim_memorisation",
)
