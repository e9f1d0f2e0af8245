"""Dual-use knowledge: forget one relation of an entity and keep the others.

The open-problems survey (Barez et al. 2025) names the hard case: hazardous knowledge sits on the
same entities as knowledge that must stay (a compound's use in a weapon beside its colour and
smell). `dual_use_split` marks one relation per kind of entity as the one to forget
(`HAZARDOUS`: a compound's use, a person's birthplace, a town's export) on the forget
entities; their other relations are *kept*. A method is given the hazardous questions as D_F and
the kept questions (plus every retained entity's) as D_R.

Retrain, the yardstick, is a model trained on everything but the hazardous facts: the forget
entities' hazardous questions are removed and the sentence stating the hazardous value is
removed from their biographies (`without_facts`). The cost of forgetting is the accuracy lost on
the kept relations of the same entities, beside Retrain's (which learned them all).

Not built: the two-hop recomposition (a hazardous answer recomposed from two kept facts) needs
facts that compose, which the embedded corpus draws independently by design; it needs a corpus
extension with linked entities (a person's birthplace being a town entity).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from unlearn.errors import UnlearnInputError
from unlearn.lm.audit.answers import answer_set
from unlearn.lm.corpus import KINDS

HAZARDOUS = {"compound": "use", "person": "birthplace", "town": "export"}


@dataclass(frozen=True)
class DualUseSplit:
    entities: tuple[str, ...]  # entities whose hazardous relation is forgotten
    forget: tuple            # QAItems: their hazardous questions (trained templates)
    kept: tuple              # QAItems: their other questions (trained templates)


def dual_use_split(corpus, entities: Sequence[str]) -> DualUseSplit:
    items = corpus.questions(entities)
    forget = tuple(q for q in items if q.relation == HAZARDOUS.get(corpus.entity(q.entity).kind))
    kept = tuple(q for q in items if q.relation != HAZARDOUS.get(corpus.entity(q.entity).kind))
    if not forget or not kept:
        raise UnlearnInputError("dual use needs entities with a hazardous relation and others to keep")
    return DualUseSplit(tuple(entities), forget, kept)


def without_facts(corpus, split: DualUseSplit):
    """A copy of `corpus` in which the dual-use entities' hazardous facts are never stated: their
    questions removed and the sentence stating the value cut from their biographies."""
    gone = {(q.entity, q.relation) for q in split.forget}
    qa = [q for q in corpus.qa if (q.entity, q.relation) not in gone]
    bios = []
    for text in corpus.bios:
        if text.entity in split.entities:
            entity = corpus.entity(text.entity)
            relation = HAZARDOUS[entity.kind]
            wording = 1 if text.held_out else 0
            statement = next(r for r in KINDS[entity.kind] if r.name == relation).statements[wording]
            sentence = statement.format(name=entity.name, value=entity.attributes[relation])
            if sentence not in text.text:
                raise UnlearnInputError(f"biography {text.id} does not state {relation} as the corpus renders it")
            text = dataclasses.replace(text, text=" ".join(text.text.replace(sentence, "").split()))
        bios.append(text)
    return dataclasses.replace(corpus, name=f"{corpus.name}-without-hazardous", qa=qa, bios=bios)


def dual_use_cost(model, tokenizer, split: DualUseSplit, batch_size: int = 64) -> dict:
    """Exact-answer accuracy (percent) on the hazardous questions and on the kept ones."""
    return {"hazardous": answer_set(model, tokenizer, [q.example() for q in split.forget], batch_size).accuracy,
            "kept": answer_set(model, tokenizer, [q.example() for q in split.kept], batch_size).accuracy,
            "hazardous_questions": len(split.forget), "kept_questions": len(split.kept)}
