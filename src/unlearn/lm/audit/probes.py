"""Extraction probes: can the forgotten answer still be got out some other way than asking?

Lynch et al. (2024, "Eight methods to evaluate robust unlearning in LLMs") show that a model that
no longer answers may still know: other wordings, in-context examples, a choice among candidates
or the activations themselves give the answer back. Four of their probes, each read beside
Retrain's (a model that never knew answers every one at the base rate):

- **paraphrase**: exact-answer accuracy on the held-out question template (never trained on).
- **few-shot**: exact-answer accuracy when the question follows `shots` answered questions of the
  same relation and template about retained entities (in-context prompting).
- **ranking**: the answer ranked first by length-normalised likelihood, P(v|q)^(1/|v|), among
  every value of the relation (the corpus's pool; for user data the answer and its perturbed
  answers): multiple choice with no generation to suppress.
- **linear probe**: a multinomial logistic regression (scikit-learn) per relation, reading the
  hidden state at the last question token, fitted on the retained entities' questions (label: the
  answer) and applied to the forget entities'. The layer is chosen on the retained entities alone
  (two-fold cross-validation over entities), never on the forget set. A linear probe can only
  name a value it was fitted on, so it is scored on the forget facts whose value some retained
  entity of the relation has; `answer_accuracy` is given on the same questions, like for like.
  An output-layer change (a bias against the answer tokens) leaves every hidden state as it was:
  the probe still reads the answer where the model no longer says it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from unlearn.errors import UnlearnInputError
from unlearn.lm.audit.answers import EXTRA_ANSWER_TOKENS, answer_set, normalise
from unlearn.lm.audit.generate import context_length, eval_mode
from unlearn.lm.examples import LMExample
from unlearn.lm.scoring import completion_logprob, encode_texts

PROBES = ("paraphrase", "few_shot", "ranking", "probe")


@dataclass(frozen=True)
class ProbeSettings:
    shots: int = 3  # in-context examples before the question
    folds: int = 2  # cross-validation folds over retained entities for the probe's layer
    c: float = 1.0  # inverse L2 strength of the logistic regression (scikit-learn's default)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def candidates(corpus, item) -> tuple[str, ...]:
    """The values `item`'s answer is ranked among: its relation's pool, else its answer and perturbed answers."""
    pool = corpus.pools.get(item.relation)
    return tuple(pool) if pool else (item.answer, *item.perturbed)


def ranked_correct(model, tokenizer, corpus, items: Sequence, batch_size: int = 64) -> np.ndarray:
    """Per QAItem: whether its answer has the highest P(v|q)^(1/|v|) among `candidates` (ties: first listed)."""
    options = [candidates(corpus, q) for q in items]
    prompts = [q.example().prompt for q, values in zip(items, options) for _ in values]
    logprob, count = completion_logprob(model, tokenizer, prompts, [v for values in options for v in values],
                                        batch_size=batch_size)
    scores = (logprob / count).numpy()
    correct, start = [], 0
    for q, values in zip(items, options):
        best = values[int(np.argmax(scores[start:start + len(values)]))]
        correct.append(normalise(best) == normalise(q.answer))
        start += len(values)
    return np.array(correct, dtype=bool)


def few_shot_examples(corpus, items: Sequence, demo_entities: Sequence[str], shots: int, seed: int,
                      tokenizer=None, max_tokens: int | None = None) -> list[LMExample]:
    """Each item's question after `shots` answered questions of its relation and template about
    `demo_entities`; with `tokenizer` and `max_tokens`, the first examples are dropped until the
    prompt and its answer fit (a small model's context is short)."""
    rng = np.random.default_rng([seed, 31])
    pool: dict[tuple[str, int], list] = {}
    for q in corpus.questions(demo_entities, held_out=None):
        pool.setdefault((q.relation, q.template), []).append(q)
    out = []
    for q in items:
        demos = pool.get((q.relation, q.template), [])
        chosen = [demos[i] for i in rng.choice(len(demos), min(shots, len(demos)), replace=False)] if demos else []
        example = q.example()
        while chosen and max_tokens is not None and tokenizer is not None and max_tokens < len(tokenizer(
                "".join(f"{d.example().prompt} {d.answer}\n" for d in chosen) + example.prompt + " " + q.answer,
                add_special_tokens=False)["input_ids"]):
            chosen = chosen[1:]
        context = "".join(f"{d.example().prompt} {d.answer}\n" for d in chosen)
        out.append(LMExample(context + example.prompt, example.completion, example.alternatives, example.id))
    return out


@torch.no_grad()
def last_token_states(model, tokenizer, prompts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """[layers, N, width]: every block's output (after the embeddings; the last after the final
    norm, as `transformers` returns it) at each prompt's last token."""
    device = next(model.parameters()).device
    out = []
    with eval_mode(model):
        for start in range(0, len(prompts), batch_size):
            batch = encode_texts(tokenizer, prompts[start:start + batch_size])
            ids, mask = batch["input_ids"], batch["attention_mask"]
            hidden = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True).hidden_states
            last = (mask.sum(dim=1) - 1).to(device)
            rows_index = torch.arange(len(ids), device=device)
            out.append(torch.stack([h[rows_index, last] for h in hidden[1:]]).float().cpu())
    return torch.cat(out, dim=1).numpy()


def _fit(features: np.ndarray, labels: Sequence[str], c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(features, labels)


def _choose_layer(states: np.ndarray, labels: np.ndarray, groups: np.ndarray, settings: ProbeSettings) -> int:
    """The layer whose probe, fitted on some retained entities, best names the others' answers."""
    entities = np.unique(groups)
    fold = dict(zip(entities, np.random.default_rng([settings.seed, 37]).permutation(len(entities)) % settings.folds))
    of = np.array([fold[g] for g in groups])
    scores = []
    for layer in range(states.shape[0]):
        hits = []
        for f in range(settings.folds):
            train, test = of != f, of == f
            if len(set(labels[train])) < 2 or not test.any():
                continue
            hits.append((_fit(states[layer][train], labels[train], settings.c).predict(states[layer][test])
                         == labels[test]).mean())
        scores.append(np.mean(hits) if hits else 0.0)
    return int(np.argmax(scores))


def linear_probe(model, tokenizer, corpus, fit_entities: Sequence[str], probe_entities: Sequence[str],
                 settings: ProbeSettings | None = None, batch_size: int = 64) -> dict:
    """Probe accuracy (percent) on `probe_entities`' questions, per-relation probes fitted on `fit_entities`'."""
    settings = settings or ProbeSettings()
    fit_items, probe_items = corpus.questions(fit_entities), corpus.questions(probe_entities)
    if not fit_items or not probe_items:
        raise UnlearnInputError("the linear probe needs questions about retained and forget entities")
    fit_states = last_token_states(model, tokenizer, [q.example().prompt for q in fit_items], batch_size)
    probe_states = last_token_states(model, tokenizer, [q.example().prompt for q in probe_items], batch_size)
    hits, probed, layers = [], [], {}
    for relation in sorted({q.relation for q in probe_items}):
        fit_rows = [i for i, q in enumerate(fit_items) if q.relation == relation]
        labels = np.array([normalise(fit_items[i].answer) for i in fit_rows])
        rows = [i for i, q in enumerate(probe_items) if q.relation == relation and normalise(q.answer) in set(labels)]
        if not rows or len(set(labels)) < 2:
            continue
        groups = np.array([fit_items[i].entity for i in fit_rows])
        layer = _choose_layer(fit_states[:, fit_rows], labels, groups, settings)
        probe = _fit(fit_states[layer][fit_rows], labels, settings.c)
        predicted = probe.predict(probe_states[layer][rows])
        hits.extend(predicted == np.array([normalise(probe_items[i].answer) for i in rows]))
        probed.extend(rows)
        layers[relation] = layer
    if not probed:
        raise UnlearnInputError("no forget fact has a value the retained entities share: nothing to probe")
    asked = [probe_items[i].example() for i in probed]
    return {"accuracy": 100.0 * float(np.mean(hits)), "answer_accuracy": answer_set(model, tokenizer, asked).accuracy,
            "probed": len(probed), "questions": len(probe_items), "layer": layers}


def extraction_probes(model, tokenizer, corpus, split, settings: ProbeSettings | None = None,
                      batch_size: int = 64) -> dict:
    """Every probe on the forget entities of `split` (percent), with its settings and seconds."""
    settings = settings or ProbeSettings()
    forget = corpus.questions(split.forget)
    started = time.perf_counter()
    result: dict = {"settings": settings.to_dict()}
    paraphrased = corpus.questions(split.forget, held_out=True)
    if paraphrased:
        result["paraphrase"] = answer_set(model, tokenizer, [q.example() for q in paraphrased], batch_size).accuracy
    limit = context_length(model)
    shots = few_shot_examples(corpus, forget, split.retain, settings.shots, settings.seed, tokenizer,
                              None if limit is None else limit - EXTRA_ANSWER_TOKENS)
    result["few_shot"] = answer_set(model, tokenizer, shots, batch_size).accuracy
    result["ranking"] = 100.0 * float(ranked_correct(model, tokenizer, corpus, forget, batch_size).mean())
    result["probe"] = linear_probe(model, tokenizer, corpus, split.retain, split.forget, settings, batch_size)
    result["seconds"] = time.perf_counter() - started
    return result
