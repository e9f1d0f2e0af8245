"""Fact edits on an LM: CounterFact's efficacy, paraphrase and specificity for constrained
fine-tuning and ROME (issue 26, item 5).

Each of `--edits` facts of the corpus's trainable entities gets a new value from its relation's
pool, applied to a fresh copy of the model (`unlearn.lm.audit.counterfact`). The model is a local
directory (`unlearn lm train`, or the bank's original of configs/lm-facts.yaml), else the default
original is taken from (or trained into) the model bank.

    PYTHONPATH=src nice -n 5 python benchmarks/bench_lm_edit.py --model DIR --edits 30
"""

from __future__ import annotations

import argparse
import functools
import json

import torch

from unlearn.lm import corpus as lm_corpus
from unlearn.lm import models as lm_models
from unlearn.lm.audit.counterfact import counterfact_scores
from unlearn.lm.edit import edit_requests
from unlearn.lm.edit.constrained import ConstrainedFineTuning
from unlearn.lm.edit.rome import ROME, key_second_moment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--corpus", default="facts")
    parser.add_argument("--edits", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, nargs="*", default=[None])
    parser.add_argument("--editors", nargs="*", choices=["constrained", "rome"], default=["constrained", "rome"])
    parser.add_argument("--epsilon", type=float, nargs="*", default=[5e-3])
    args = parser.parse_args()
    torch.set_num_threads(1)
    corpus = lm_corpus.load(args.corpus)
    if args.model:
        model, tokenizer = lm_models.load_lm(args.model)
    else:
        model, tokenizer = lm_models.bank_lm(corpus, corpus.trainable, seed=args.seed)
    requests = edit_requests(corpus, corpus.trainable, args.edits, args.seed)
    texts = corpus.training_texts(corpus.trainable)
    prefixes = [t.text for t in corpus.general[:5]]
    for layer in args.layers:
        for epsilon in args.epsilon if "constrained" in args.editors else []:
            editor = ConstrainedFineTuning(layer=layer, epsilon=epsilon)
            scores = counterfact_scores(model, tokenizer, corpus, requests, editor.edit)
            print(json.dumps({"editor": "constrained", **vars(editor), **scores}), flush=True)
        if "rome" not in args.editors:
            continue
        rome = ROME(layer=layer)
        moment = key_second_moment(model, tokenizer, texts, rome.layer_of(model))
        scores = counterfact_scores(model, tokenizer, corpus, requests, functools.partial(
            rome.edit, prefixes=prefixes, key_texts=texts, second_moment=moment))
        print(json.dumps({"editor": "rome", **vars(rome), **scores}), flush=True)


if __name__ == "__main__":
    main()
