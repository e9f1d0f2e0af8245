"""What an edit is (a fact and its new value), how to draw some, and where an MLP's projection is."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from unlearn.errors import UnlearnInputError


@dataclass(frozen=True)
class EditRequest:
    entity: str
    relation: str
    subject: str  # the entity's name as it appears in the prompts
    old: str
    new: str
    prompt: str  # the rewrite prompt (question template 0, as the model was trained)
    paraphrases: tuple[str, ...]  # the fact's other question templates (trained and held out)

    def __post_init__(self) -> None:
        if self.subject not in self.prompt:
            raise UnlearnInputError(f"the rewrite prompt does not name its subject {self.subject!r}")


def edit_requests(corpus, entities, n: int, seed: int) -> list[EditRequest]:
    """`n` edits of distinct facts of `entities`: a relation and a new value drawn from the relation's
    pool (never the old one), like CounterFact's counterfactual objects."""
    rng = np.random.default_rng([seed, 41])
    facts = sorted({(q.entity, q.relation) for q in corpus.questions(entities)})
    if n > len(facts):
        raise UnlearnInputError(f"{n} edits asked, but the entities have {len(facts)} facts")
    out = []
    for i in rng.choice(len(facts), n, replace=False):
        entity, relation = facts[i]
        items = sorted((q for q in corpus.questions([entity], held_out=None) if q.relation == relation),
                       key=lambda q: q.template)
        old = items[0].answer
        pool = [v for v in corpus.pools.get(relation, ()) if v != old] or list(items[0].perturbed)
        if not pool:
            raise UnlearnInputError(f"no other value of {relation!r} to edit {entity!r} towards")
        new = pool[int(rng.integers(len(pool)))]
        prompts = [q.example().prompt for q in items]
        out.append(EditRequest(entity, relation, corpus.entity(entity).name, old, new, prompts[0], tuple(prompts[1:])))
    return out


def mlp_projection(model, layer: int) -> tuple[nn.Module, nn.Module, bool]:
    """(the MLP of decoder layer `layer`, its output projection, whether that projection stores its
    weight as [in, out]: GPT-2's Conv1D) for GPT-2 (mlp.c_proj) and Llama-like models (mlp.down_proj)."""
    from unlearn.lm.methods.rmu import decoder_layers

    layers = decoder_layers(model)
    if not -len(layers) <= layer < len(layers):
        raise UnlearnInputError(f"the model has {len(layers)} layers; there is no layer {layer}")
    mlp = layers[layer].mlp
    for name in ("c_proj", "down_proj", "fc_out", "dense_4h_to_h"):
        proj = getattr(mlp, name, None)
        if proj is not None:
            return mlp, proj, type(proj).__name__ == "Conv1D"
    raise UnlearnInputError(f"cannot find the MLP output projection of layer {layer} ({type(mlp).__name__})")
