"""Successive forget requests: MUSE's sustainability criterion (Shi et al. 2024, Sec. 4).

A deployed model gets deletion requests one after another; each is honoured on the model the
previous one left. `successive_requests` splits the forget entities into `n_requests` requests
(in order of id), unlearns each in turn from the previous result, and audits after each: exact-
answer accuracy on the retained entities (utility, MUSE measures KnowMem on its retain set) and
on every entity forgotten so far. MUSE runs 4 requests; so do we.

`unlearn requests` (the ledger) is not used: its requests are sample indices of a classifier's
dataset and its models single classifier checkpoints; an LM request is a set of entities of a
corpus and a model directory.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from unlearn.errors import UnlearnInputError
from unlearn.lm.audit.answers import answer_set

N_REQUESTS = 4


def successive_requests(model, tokenizer, corpus, split, unlearn: Callable, n_requests: int = N_REQUESTS,
                        max_retain: int = 400, batch_size: int = 64) -> dict:
    """`unlearn(model, tokenizer, forget_examples, retain_examples, request)` applied `n_requests`
    times; per request the retain accuracy and the accuracy on everything forgotten so far (percent)."""
    if len(split.forget) < n_requests:
        raise UnlearnInputError(f"{n_requests} requests need at least as many forget entities, got {len(split.forget)}")
    requests = [list(part) for part in np.array_split(np.array(sorted(split.forget)), n_requests)]
    retain = [q.example() for q in corpus.questions(split.retain)]
    sample = [retain[i] for i in np.random.default_rng([0, 43]).permutation(len(retain))[:max_retain]]
    out = {"retain": [], "forgotten": [], "seconds": []}
    gone: list[str] = []
    for number, entities in enumerate(requests, start=1):
        forget = [q.example() for q in corpus.questions(entities)]
        started = time.perf_counter()
        model = unlearn(model, tokenizer, forget, retain, number)
        out["seconds"].append(time.perf_counter() - started)
        gone += entities
        out["retain"].append(answer_set(model, tokenizer, sample, batch_size).accuracy)
        out["forgotten"].append(answer_set(model, tokenizer, [q.example() for q in corpus.questions(gone)],
                                           batch_size).accuracy)
    out["requests"] = [len(r) for r in requests]
    return out
