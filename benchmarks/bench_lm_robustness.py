"""Does the knowledge stay gone? The robustness table of issue 26, one model seed per call.

For one model seed: the original (every trainable entity), Retrain (without the forget entities)
and every LM method run from the original with its protocol defaults (lr = the recipe's, as
configs/lm-facts.yaml before tuning), and for each row:

- relearning (`unlearn.lm.audit.relearn`): both attacks, recovery above Retrain's (points);
- extraction probes (`unlearn.lm.audit.probes`): paraphrase, few-shot, ranking, linear probe;
- dual use (`unlearn.lm.audit.dualuse`), on the linked corpus (`with_links`: one bridge entity
  per forget entity shares its hazardous value, and a kept link fact names it): the method run
  from that corpus's original with only the forget entities' hazardous relation as D_F, their
  other relations and links kept; Retrain's row is a model trained without those facts; beside
  the hazardous and kept accuracies, the share of hazardous answers recomposed through the two
  kept hops, and the one-prompt two-hop question;
- successive requests (`unlearn.lm.audit.sequential`): the forget entities as 4 requests in turn;
- the seconds of each, beside the seconds Retrain took to train.

    PYTHONPATH=src nice -n 5 python benchmarks/bench_lm_robustness.py --seed 0 --out /tmp/rob/seed0.json
    PYTHONPATH=src python benchmarks/bench_lm_robustness.py --table /tmp/rob/seed*.json   # the markdown table
    # tuned values from a tuned bench run, 3 seeds, the table written to OUT/table.md:
    PYTHONPATH=src python benchmarks/bench_lm_robustness.py --corpus facts --recipe default --fraction 0.1 \
        --tuned results/lm-facts --seeds 0 1 2 --out-dir OUT

The default is a smaller setting than lm-facts (the `facts-tiny` corpus, a 2-layer GPT-2 of width
64, forget 25%), sized for a shared 2-core machine; `--corpus facts --recipe default` runs the
default model.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from unlearn.lm import corpus as lm_corpus
from unlearn.lm import methods as lm_methods
from unlearn.lm import models as lm_models
from unlearn.lm.audit.answers import answer_set
from unlearn.lm.audit.dualuse import dual_use_cost, dual_use_split, two_hop, with_links, without_facts
from unlearn.lm.audit.probes import extraction_probes
from unlearn.lm.audit.relearn import RelearnSettings, relearning, relearning_recovery
from unlearn.lm.audit.sequential import successive_requests

SMALL = lm_models.LMRecipe(vocab_size=400, n_layer=2, n_head=2, n_embd=64, epochs=40, batch_size=16, lr=3e-3)
# The people slice's recipe (tests/test_lm_robustness.py): learns every fact in seconds.
PEOPLE = lm_models.LMRecipe(vocab_size=600, n_layer=2, n_head=2, n_embd=64, epochs=20, batch_size=16, lr=5e-3)
RECIPES = {"small": SMALL, "people": PEOPLE, "default": lm_models.DEFAULT_RECIPE, "tiny": lm_models.TINY_RECIPE}


def load_corpus(name: str):
    """An embedded corpus, or "people": 46 people of `facts`, birthplace and occupation, questions only."""
    if name == "people":
        return lm_corpus.sliced(lm_corpus.load("facts"), "person", ("birthplace", "occupation"), 46, 6)
    return lm_corpus.load(name)


def accuracy(model, tokenizer, items) -> float:
    return answer_set(model, tokenizer, [q.example() for q in items]).accuracy


def audit_row(model, tokenizer, corpus, split, settings: RelearnSettings, *, reference=None) -> dict:
    started = time.perf_counter()
    row = {"acc_forget": accuracy(model, tokenizer, corpus.questions(split.forget)),
           "acc_retain": accuracy(model, tokenizer, corpus.questions(split.retain))}
    row["relearning"] = relearning(model, tokenizer, corpus, split, settings)
    if reference is not None:
        row["recovery"] = relearning_recovery(row["relearning"], reference["relearning"])
    row["probes"] = extraction_probes(model, tokenizer, corpus, split)
    row["audit_seconds"] = time.perf_counter() - started
    return row


SETTING = "with_retain"  # every row here is given D_R


def tuned_values(run_dir, fraction: float, label: str | None = None) -> tuple[dict[str, dict], str]:
    """{method: its tuned hyperparameters} from `run_dir/tuning.json` (`unlearn bench`'s tuning
    stage): the best value per (forget label, setting, method), for the forget set `label` (default:
    the protocol's forget set of this `fraction`, e.g. forget10) and the with_retain setting; and
    that label."""
    import yaml

    from unlearn.errors import UnlearnInputError
    from unlearn.experiments.tune import tuned_hparams

    run_dir = Path(run_dir)
    if not (run_dir / "tuning.json").is_file() or not (run_dir / "config.yaml").is_file():
        raise UnlearnInputError(f"{run_dir}: no tuning.json and config.yaml (a tuned `unlearn bench` run directory)")
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    labels = [f.get("name") or f"forget{f['fraction'] * 100:02g}" for f in config.get("forget", [])
              if (abs(f["fraction"] - fraction) < 1e-9 if label is None else label == f.get("name"))]
    if not labels:
        raise UnlearnInputError(f"{run_dir}: its protocol has no forget set "
                                + (f"of fraction {fraction}" if label is None else repr(label)))
    best = tuned_hparams(json.loads((run_dir / "tuning.json").read_text()))
    return {method: dict(hp) for (forget, setting, method), hp in best.items()
            if forget == labels[0] and setting == SETTING}, labels[0]


def run_seed(args, save=lambda result: None) -> dict:
    """Every row for one model seed; `save(result)` after each row (a long run keeps what it finished)."""
    torch.set_num_threads(1)
    recipe = RECIPES[args.recipe]
    settings = RelearnSettings.for_recipe(recipe, passes=tuple(args.passes), lr=args.relearn_lr,
                                          steps=None if args.steps is None else tuple(args.steps))
    corpus = load_corpus(args.corpus)
    split = lm_corpus.forget_split(corpus, args.fraction, seed=0)
    bank = None
    if args.bank:
        from unlearn.bank import ModelBank
        bank = ModelBank(args.bank)
    original, tokenizer = lm_models.bank_lm(corpus, corpus.trainable, seed=args.seed, recipe=recipe, bank=bank)
    started = time.perf_counter()
    retrained = lm_models.train_lm(corpus, split.retain, seed=args.seed, recipe=recipe, tokenizer=tokenizer)[0]
    retrain_seconds = time.perf_counter() - started
    # Dual use on the linked corpus (`with_links`: a bridge per forget entity makes each hazardous
    # fact reachable through kept ones); its own original and Retrain, the default corpus untouched.
    linked, links = with_links(corpus, dual_use_split(corpus, split.forget))
    dual = dual_use_split(linked, split.forget)  # kept: the other relations and the link
    dual_original, dual_tokenizer = lm_models.bank_lm(linked, linked.trainable, seed=args.seed, recipe=recipe, bank=bank)
    started = time.perf_counter()
    dual_retrained = lm_models.train_lm(without_facts(linked, dual), linked.trainable, seed=args.seed, recipe=recipe,
                                        tokenizer=dual_tokenizer)[0]
    dual_seconds = time.perf_counter() - started
    dual_retain = [q.example() for q in linked.questions(list(split.retain) + [t.bridge for t in links])]

    def dual_audit(model) -> dict:
        return {**dual_use_cost(model, dual_tokenizer, dual), "two_hop": two_hop(model, dual_tokenizer, links)}
    given = [q.example() for q in corpus.questions(corpus.holdout[0::2])]
    forget = [q.example() for q in corpus.questions(split.forget)]
    retain = [q.example() for q in corpus.questions(split.retain)]
    tuned, label = tuned_values(args.tuned, args.fraction, args.tuned_forget) if args.tuned else ({}, None)
    out = {"seed": args.seed, "corpus": args.corpus, "recipe": recipe.to_dict(), "fraction": args.fraction,
           "forget": list(split.forget), "retrain_seconds": retrain_seconds, "rows": {},
           "tuned_from": None if not args.tuned else {"run": str(args.tuned), "forget": label, "setting": SETTING}}
    out["rows"]["retrain"] = reference = audit_row(retrained, tokenizer, corpus, split, settings)
    reference["dual_use"] = {**dual_audit(dual_retrained), "seconds": dual_seconds}
    reference["sequential"] = {"retain": [reference["acc_retain"]], "note": "retrain without every request"}
    reference["unlearn_seconds"] = retrain_seconds  # Retrain's "unlearning" is its training
    out["rows"]["original"] = row = audit_row(original, tokenizer, corpus, split, settings, reference=reference)
    row["dual_use"] = dual_audit(dual_original)
    save(out)
    for name in args.methods:
        print(f"seed {args.seed}: {name}", flush=True)

        hparams = {"lr": recipe.lr, **tuned.get(name, {})}

        def unlearn(model, tok, f, r, request=0, name=name, hparams=hparams):
            method = lm_methods.get(name, **hparams)
            return method.unlearn(model, tok, f, r, seed=args.seed + 100 * request, holdout=given)

        started = time.perf_counter()
        unlearned = unlearn(original, tokenizer, forget, retain)
        seconds = time.perf_counter() - started
        row = audit_row(unlearned, tokenizer, corpus, split, settings, reference=reference)
        row["unlearn_seconds"] = seconds
        row["hparams"], row["tuned"] = hparams, name in tuned
        started = time.perf_counter()
        dual_model = unlearn(dual_original, dual_tokenizer, [q.example() for q in dual.forget],
                             [q.example() for q in dual.kept] + dual_retain)
        row["dual_use"] = {**dual_audit(dual_model), "seconds": time.perf_counter() - started}
        row["sequential"] = successive_requests(original, tokenizer, corpus, split, unlearn)
        out["rows"][name] = row
        save(out)
    return out


def _cell(values, digits=1) -> str:
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


# Each cost, in seconds (the table divides it by the seed's retrain seconds): unlearning (Retrain:
# its training), each relearning attack, the probes, the four successive requests.
COSTS = (lambda r: r.get("unlearn_seconds", 0.0),
         lambda r: r["relearning"]["facts"]["seconds"],
         lambda r: r["relearning"]["benign"]["seconds"],
         lambda r: r["probes"]["seconds"],
         lambda r: sum(r["sequential"]["seconds"]))


def _has(fn, row) -> bool:
    try:
        fn(row)
    except (KeyError, TypeError):
        return False
    return True


def table(paths: list[str]) -> str:
    runs = [json.loads(Path(p).read_text()) for p in paths]
    names = list(runs[0]["rows"])
    names = ["original", "retrain"] + [n for n in names if n not in ("original", "retrain")]
    header = ("| method | forget acc | retain acc | relearn facts: recovery | relearn benign: recovery | "
              "ranking | few-shot | probe (answer) | dual use: hazardous / kept | two-hop: recomposed (one prompt) | sequential: retain after 1→4 | "
              "seconds / retrain: unlearn · relearn facts · relearn benign · probes · sequential |")
    lines = [header, "|" + " --- |" * 12]
    for name in names:
        rows = [r["rows"][name] for r in runs if name in r["rows"]]
        retrain_s = [r["retrain_seconds"] for r in runs if name in r["rows"]]

        def get(fn, rows=rows):
            out = []
            for row in rows:
                try:
                    out.append(float(fn(row)))
                except (KeyError, TypeError, IndexError):
                    out.append(None)
            return out

        recovery = {a: (_cell(get(lambda r, a=a: r["recovery"][a]["recovery"])) if name != "retrain" else "0 (ref.)")
                    for a in ("facts", "benign")}
        sequential = get(lambda r: r["sequential"]["retain"][0])
        last = get(lambda r: r["sequential"]["retain"][-1])
        seq = "n/a" if name == "original" else (f"{_cell(sequential)} → {_cell(last)}" if name != "retrain"
                                                else f"{_cell(last)} (ref.)")
        cost = " · ".join(_cell([fn(row) / rs if _has(fn, row) else None for row, rs in zip(rows, retrain_s)], 2)
                          for fn in COSTS)
        label = f"{name} (tuned)" if rows and all(r.get("tuned") for r in rows) else name
        lines.append(
            f"| {label} | {_cell(get(lambda r: r['acc_forget']))} | {_cell(get(lambda r: r['acc_retain']))} | "
            f"{recovery['facts']} | {recovery['benign']} | {_cell(get(lambda r: r['probes']['ranking']))} | "
            f"{_cell(get(lambda r: r['probes']['few_shot']))} | {_cell(get(lambda r: r['probes']['probe']['accuracy']))} "
            f"({_cell(get(lambda r: r['probes']['probe']['answer_accuracy']))}) | "
            f"{_cell(get(lambda r: r['dual_use']['hazardous']))} / {_cell(get(lambda r: r['dual_use']['kept']))} | "
            f"{_cell(get(lambda r: r['dual_use']['two_hop']['recomposed']))} "
            f"({_cell(get(lambda r: r['dual_use']['two_hop']['composed']))}) | "
            f"{seq} | {cost} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", default="facts-tiny")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="small")
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--methods", nargs="*", default=lm_methods.available())
    parser.add_argument("--passes", type=float, nargs="*", default=list(RelearnSettings().passes),
                        help="relearning budgets read, in passes over the attack's texts (default: RelearnSettings')")
    parser.add_argument("--steps", type=int, nargs="*", default=None,
                        help="relearning budgets as step counts instead of passes (the tables before the rule)")
    parser.add_argument("--relearn-lr", type=float, default=None,
                        help="relearning rate instead of a tenth of the recipe's (before the rule: 2e-3)")
    parser.add_argument("--bank", default=None, help="model bank directory (default: the user's)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--table", nargs="*", default=None, help="print the markdown table of these result files")
    parser.add_argument("--tuned", default=None,
                        help="a tuned `unlearn bench` run directory: each method's best values from its tuning.json "
                             "(forget set of this --fraction, with_retain); untuned methods keep lr = the recipe's")
    parser.add_argument("--tuned-forget", default=None,
                        help="with --tuned: the tuned forget set to read (default: the one of this --fraction)")
    parser.add_argument("--seeds", type=int, nargs="*", default=None,
                        help="run these model seeds in turn (with --out-dir): seedN.json each and table.md of all")
    parser.add_argument("--out-dir", default=None)
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    if args.seeds:
        if not args.out_dir:
            parser.error("--seeds needs --out-dir")
        paths = []
        for seed in args.seeds:
            args.seed, args.out = seed, str(Path(args.out_dir) / f"seed{seed}.json")
            run_seed(args, lambda result: _write(args.out, json.dumps(result, indent=1)))
            paths.append(args.out)
        _write(Path(args.out_dir) / "table.md", table(paths) + "\n")
        print(table(paths))
        return
    result = run_seed(args, lambda result: args.out and _write(args.out, json.dumps(result, indent=1)))
    if not args.out:
        print(json.dumps(result, indent=1))


def _write(path, text: str) -> None:
    """Write `text` to `path` atomically (a long run keeps the last complete file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)

if __name__ == "__main__":
    main()
