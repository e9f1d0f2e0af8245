"""Does the knowledge stay gone? Known answers for the LM robustness audits (issue 26).

A GPT-2 (2 layers, width 64) trained from scratch in seconds on a small slice of the embedded
`facts` corpus (40 people, two relations, questions only) knows every trained fact; one
retrained without half of them is the model that never knew. Facts are drawn uniformly and
independently from pools of 12 (`unlearn.lm.corpus`), so for a model that never saw a fact the
number it gets right is Binomial(n, 1/12) over the corpus's draw, whatever the model guesses:
that is where every tolerance here comes from (an exact binomial interval at level 1e-3, with n
the number of facts, not questions: the three templates of one fact are not independent draws,
and counting facts only widens the interval).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from unlearn.errors import UnlearnInputError
from unlearn.lm import corpus as lm_corpus
from unlearn.lm import models as lm_models
from unlearn.lm.audit.answers import normalise
from unlearn.lm.audit.counterfact import counterfact_scores
from unlearn.lm.audit.dualuse import (
    HAZARDOUS,
    LINKS,
    dual_use_cost,
    dual_use_split,
    two_hop,
    with_links,
    without_facts,
)
from unlearn.lm.audit.probes import candidates, few_shot_examples, linear_probe, ranked_correct
from unlearn.lm.audit.relearn import (
    RelearnSettings,
    benign_texts,
    fact_questions,
    fact_split,
    relearning,
    relearning_recovery,
)
from unlearn.lm.audit.sequential import successive_requests
from unlearn.lm.corpus import KINDS
from unlearn.lm.edit import edit_requests, mlp_projection
from unlearn.lm.edit.constrained import ConstrainedFineTuning
from unlearn.lm.edit.rome import ROME
from unlearn.lm.finetune import finetune_steps

pytest.importorskip("transformers")

RELATIONS = ("birthplace", "occupation")
RECIPE = lm_models.LMRecipe(vocab_size=600, n_layer=2, n_head=2, n_embd=64, epochs=20, batch_size=16, lr=5e-3)
LEVEL = 1e-3  # the binomial intervals' level: a correct audit fails a test once in a thousand corpora


def people_corpus(n_people: int = 46, n_holdout: int = 6) -> lm_corpus.Corpus:
    """The first `n_people` people of `facts` with two relations, questions only."""
    return lm_corpus.sliced(lm_corpus.load("facts"), "person", RELATIONS, n_people, n_holdout)


@pytest.fixture(scope="module")
def corpus():
    return people_corpus()


@pytest.fixture(scope="module")
def split(corpus):
    return lm_corpus.forget_split(corpus, 0.5, seed=0)


@pytest.fixture(scope="module")
def original(corpus):
    return lm_models.train_lm(corpus, corpus.trainable, seed=0, recipe=RECIPE)


@pytest.fixture(scope="module")
def retrained(corpus, split, original):
    return lm_models.train_lm(corpus, split.retain, seed=0, recipe=RECIPE, tokenizer=original[1])[0]


def base_rate_interval(n_facts: int, p: float) -> tuple[float, float]:
    """The exact binomial interval of the share of n facts a model that never saw them gets right, in percent."""
    low, high = stats.binom.interval(1 - LEVEL, n_facts, p)
    return 100.0 * low / n_facts, 100.0 * high / n_facts


# ---- relearning ----

def test_fact_split_is_disjoint_covers_the_forget_facts_and_keeps_the_share(corpus, split):
    taught, held = fact_split(corpus, split.forget, 0.3, seed=4)
    everything = {(q.entity, q.relation) for q in corpus.questions(split.forget)}
    assert set(taught) | set(held) == everything and not set(taught) & set(held)
    assert len(taught) == round(0.3 * len(everything))
    assert {(q.entity, q.relation) for q in fact_questions(corpus, held)} == set(held)
    assert fact_split(corpus, split.forget, 0.3, seed=4) == (taught, held)


def test_benign_texts_name_the_entity_and_state_no_value_of_any_relation(corpus, split):
    texts = benign_texts(corpus, split.forget)
    values = {normalise(v) for pool in lm_corpus.load("facts").pools.values() for v in pool}
    for example in texts:
        entity = corpus.entity(example.id.split(".")[0])
        assert entity.name in example.completion
        words = set(normalise(example.completion.replace(entity.name, "")).split())
        assert not words & values, example.completion
        assert not any(" " in v and v in normalise(example.completion) for v in values)


def test_finetune_steps_leaves_the_input_alone_is_seeded_and_looks_at_the_asked_steps(original):
    model, tokenizer = original
    before = {k: v.clone() for k, v in model.state_dict().items()}
    examples = benign_texts(people_corpus(), ["person-000"])
    seen = []
    a = finetune_steps(model, tokenizer, examples, 3, lr=1e-3, batch_size=2, seed=1, at=(0, 2),
                       look=lambda k, m: seen.append((k, m.training)))
    b = finetune_steps(model, tokenizer, examples, 3, lr=1e-3, batch_size=2, seed=1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(before[k], v) for k, v in a.state_dict().items())
    assert seen == [(0, False), (2, False)]
    with pytest.raises(UnlearnInputError, match="no examples"):
        finetune_steps(model, tokenizer, [], 3, lr=1e-3, batch_size=2, seed=1)


SETTINGS = RelearnSettings.for_recipe(RECIPE)  # the attack's rule: a tenth of the training rate, 1-8 passes


@pytest.fixture(scope="module")
def retrain_relearned(corpus, split, original, retrained):
    return relearning(retrained, original[1], corpus, split, SETTINGS)


@pytest.fixture(scope="module")
def original_relearned(corpus, split, original):
    return relearning(*original, corpus, split, SETTINGS)


def test_the_default_budget_is_a_tenth_of_the_training_rate_over_passes_of_the_taught_texts():
    settings = RelearnSettings.for_recipe(RECIPE)
    assert settings.rate == pytest.approx(RECIPE.lr / 10)
    assert settings.step_counts(36) == (0, 5, 10, 20, 40)  # 36 texts in batches of 8: 5 steps a pass
    assert RelearnSettings(steps=(3, 0), lr=1e-3).step_counts(36) == (0, 3)
    assert RelearnSettings(lr=1e-3).rate == 1e-3
    with pytest.raises(UnlearnInputError, match="learning rate"):
        RelearnSettings(lr_share=0.0).check()


def test_retrains_recovery_on_the_facts_it_was_not_taught_stays_at_the_base_rate(corpus, split, retrain_relearned):
    """Deeb & Roger's attack on the model that never knew: it learns the taught half and, at
    every budget, answers the other half at the base rate (exactly; ranked among the 12 values:
    within the two-sided interval; greedy: at most its top, a guess off the pool only loses)."""
    facts = retrain_relearned["facts"]
    low, high = base_rate_interval(facts["facts_asked"], lm_corpus.base_rate(corpus))
    assert facts["facts_asked"] >= 20
    for accuracy, ranked in zip(facts["accuracy"], facts["rank_accuracy"]):
        assert accuracy <= high
        assert low <= ranked <= high
    benign = retrain_relearned["benign"]
    n_facts = len({(q.entity, q.relation) for q in corpus.questions(split.forget)})
    low, high = base_rate_interval(n_facts, lm_corpus.base_rate(corpus))
    assert all(a <= high for a in benign["accuracy"]) and all(low <= r <= high for r in benign["rank_accuracy"])


def test_the_facts_attack_teaches_what_it_is_given(retrain_relearned):
    """The attack has teeth: within the budget the model that never knew learns the taught facts
    well above the base rate (the top of its interval)."""
    facts = retrain_relearned["facts"]
    high = base_rate_interval(facts["facts_taught"], 1 / 12)[1]
    assert facts["taught_accuracy"][0] <= high < facts["taught_accuracy"][-1]


def test_the_attack_leaves_the_untouched_original_knowing_what_it_does_not_teach(corpus, split, original_relearned):
    """The attack measures something: the original, which knows every forget fact, still answers
    the untaught ones above the base rate's interval after every budget of both attacks, so a
    model that kept the facts is told from Retrain. (At the training rate itself the small model
    forgets them all within one pass: then every model, Retrain included, reads recovery 0.)"""
    facts = original_relearned["facts"]
    assert min(facts["accuracy"]) > base_rate_interval(facts["facts_asked"], 1 / 12)[1]
    n_facts = len({(q.entity, q.relation) for q in corpus.questions(split.forget)})
    assert min(original_relearned["benign"]["accuracy"]) > base_rate_interval(n_facts, 1 / 12)[1]


def test_recovery_is_the_mean_gap_to_retrain_over_the_attacked_budgets(retrain_relearned):
    steps = retrain_relearned["facts"]["steps"]
    gaps = [0.0] + [10.0 * i for i in range(1, len(steps))]
    shifted = {**retrain_relearned, "facts": {**retrain_relearned["facts"],
                                              "accuracy": [a + d for a, d in zip(retrain_relearned["facts"]["accuracy"],
                                                                                 gaps)]}}
    recovery = relearning_recovery(shifted, retrain_relearned)
    assert recovery["facts"]["curve"] == pytest.approx(gaps)
    assert recovery["facts"]["recovery"] == pytest.approx(np.mean(gaps[1:]))
    assert recovery["benign"]["recovery"] == 0.0
    with pytest.raises(UnlearnInputError, match="other settings"):
        relearning_recovery({**shifted, "settings": {"steps": [0]}}, retrain_relearned)


# ---- extraction probes ----

def test_ranking_names_every_known_answer_and_candidates_are_the_pool(corpus, original):
    model, tokenizer = original
    items = corpus.questions(corpus.trainable[:10])
    assert all(set(candidates(corpus, q)) == set(corpus.pools[q.relation]) for q in items)
    assert ranked_correct(model, tokenizer, corpus, items).all()


def test_few_shot_prompts_show_answered_questions_of_the_same_relation_about_other_entities(corpus, split):
    items = corpus.questions(split.forget)[:6]
    shots = few_shot_examples(corpus, items, split.retain, 3, seed=0)
    for item, shot in zip(items, shots):
        context = shot.prompt[: -len(item.example().prompt)]
        assert shot.prompt.endswith(item.example().prompt) and shot.completion == item.answer
        assert context.count("Question:") == 3 and corpus.entity(item.entity).name not in context


@pytest.fixture(scope="module")
def original_probe(corpus, split, original):
    return linear_probe(*original, corpus, split.retain, split.forget)


def test_the_originals_probe_accuracy_equals_its_answer_accuracy(original_probe):
    """A model that answers every forget question: the probe reads the answer from its
    activations as well as the model says it. Tolerance: the binomial error of the probe's
    accuracy over the probed facts (z at level 1e-3), not a fitted margin."""
    n_facts = original_probe["probed"] // 3
    assert original_probe["answer_accuracy"] == 100.0 and n_facts >= 20
    p = original_probe["accuracy"] / 100
    z = stats.norm.ppf(1 - LEVEL / 2)
    assert abs(original_probe["accuracy"] - original_probe["answer_accuracy"]) <= 100 * z * np.sqrt(
        max(p * (1 - p), 1 / n_facts) / n_facts)


def bias_against_answers(model, tokenizer, answers) -> torch.nn.Module:
    """The cheapest fake unlearning: a copy whose output layer gets a large negative bias on
    every token of the given answers; every hidden state is untouched."""
    fake = lm_models.copy_lm(model)
    head = fake.lm_head
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    biased.weight = head.weight
    with torch.no_grad():
        biased.bias.copy_(head.bias if head.bias is not None else torch.zeros_like(biased.bias))
        for answer in answers:
            biased.bias[tokenizer(" " + answer, add_special_tokens=False)["input_ids"]] = -1e4
    fake.lm_head = biased
    return fake.eval()


def test_a_method_that_only_biases_the_output_layer_is_caught_by_the_probe(corpus, split, original,
                                                                           original_probe):
    model, tokenizer = original
    fake = bias_against_answers(model, tokenizer, {q.answer for q in corpus.questions(split.forget)})
    caught = linear_probe(fake, tokenizer, corpus, split.retain, split.forget)
    assert caught["answer_accuracy"] <= base_rate_interval(caught["probed"] // 3, 1 / 12)[1]
    assert caught["accuracy"] == original_probe["accuracy"]
    assert caught["accuracy"] >= 80.0


def test_the_probe_reads_nothing_from_a_model_that_never_knew(corpus, split, original, retrained):
    probe = linear_probe(retrained, original[1], corpus, split.retain, split.forget)
    assert probe["accuracy"] <= base_rate_interval(probe["probed"] // 3, 1 / 12)[1]


# ---- dual use, successive requests ----

def test_the_dual_use_retrain_corpus_states_every_fact_but_the_hazardous_ones():
    corpus = lm_corpus.load("facts-tiny")
    split = lm_corpus.forget_split(corpus, 0.25, seed=0)
    dual = dual_use_split(corpus, split.forget)
    derived = without_facts(corpus, dual)
    texts = " ".join(derived.training_texts(derived.trainable))
    for entity_id in split.forget:
        entity = corpus.entity(entity_id)
        for relation in KINDS[entity.kind]:
            stated = [s.format(name=entity.name, value=entity.attributes[relation.name]) for s in relation.statements[:1]]
            asked = [q for q in derived.questions([entity_id]) if q.relation == relation.name]
            hazardous = relation.name == HAZARDOUS[entity.kind]
            assert (stated[0] in texts) != hazardous and bool(asked) != hazardous
    untouched = set(corpus.trainable) - set(split.forget)
    assert derived.training_texts(untouched) == corpus.training_texts(untouched)
    assert {q.relation for q in dual.forget} <= set(HAZARDOUS.values())
    assert not {(q.entity, q.relation) for q in dual.forget} & {(q.entity, q.relation) for q in dual.kept}


FACTS_DIGEST = "19cfe1aa93b139c36dd239ef"  # corpus.load("facts"): what the lm-facts benchmark runs train on


def test_linking_leaves_the_default_corpus_as_it_is_and_ties_each_hazardous_fact_to_a_bridge():
    facts = lm_corpus.load("facts")
    assert facts.digest() == FACTS_DIGEST
    dual = dual_use_split(facts, lm_corpus.forget_split(facts, 0.1, seed=0).forget)
    linked, items = with_links(facts, dual)
    assert facts.digest() == FACTS_DIGEST == lm_corpus.load("facts").digest()
    assert linked.entities[:len(facts.entities)] == facts.entities and linked.holdout == facts.holdout
    assert set(facts.qa) < set(linked.qa) and len(items) == len(dual.entities)
    old_words = {w.removesuffix("ine").lower() for e in facts.entities for w in e.name.split()}
    for item in items:
        entity, bridge = linked.entity(item.entity), linked.entity(item.bridge)
        hazardous = HAZARDOUS[entity.kind]
        assert bridge.kind == entity.kind and bridge.attributes[hazardous] == entity.attributes[hazardous] == item.answer
        assert item.hop.answer == bridge.name and item.second.entity == bridge.id and not item.hop.held_out
        assert not {w.removesuffix("ine").lower() for w in bridge.name.split()} & old_words
        statement = LINKS[entity.kind].statement.format(name=entity.name, other=bridge.name)
        (trained,) = [t.text for t in linked.texts([entity.id])]
        assert trained.endswith(statement) and item.answer not in statement
    untouched = [e for e in facts.trainable if e not in dual.entities]
    assert linked.training_texts(untouched) == facts.training_texts(untouched)


@pytest.fixture(scope="module")
def linked_retrain(corpus, split, original):
    """Retrain of the linked people corpus: every fact but the forget people's birthplaces, the
    links and the bridges (whose birthplaces are the forgotten ones) kept."""
    dual = dual_use_split(corpus, split.forget)
    linked, items = with_links(corpus, dual)
    model, tokenizer = lm_models.train_lm(without_facts(linked, dual), linked.trainable, seed=0, recipe=RECIPE)
    return model, tokenizer, dual, items


def test_the_forgotten_answer_is_recomposed_from_kept_facts_by_a_model_that_never_saw_it(corpus, linked_retrain):
    """The dual-use known answer: the model trained without the hazardous facts answers them at
    the base rate, yet names each bridge and the bridge's value, so it reaches the forgotten
    value through kept facts well above the base rate's interval."""
    model, tokenizer, dual, items = linked_retrain
    high = base_rate_interval(len(items), lm_corpus.base_rate(corpus, "birthplace"))[1]
    assert dual_use_cost(model, tokenizer, dual)["hazardous"] <= high
    result = two_hop(model, tokenizer, items)
    assert result["facts"] == len(dual.entities) >= 20
    assert result["recomposed"] > high and result["recomposed"] <= min(result["hop"], result["second"])


def test_successive_requests_forget_in_turn_and_audit_after_each(corpus, split, original):
    model, tokenizer = original
    seen = []

    def fake(m, tok, forget, retain, request):  # the output-bias fake, one request's answers at a time
        seen.append({e.id.split(".")[0] for e in forget})
        return bias_against_answers(m, tok, {e.completion for e in forget})

    result = successive_requests(model, tokenizer, corpus, split, fake, max_retain=60)
    assert sum(result["requests"]) == len(split.forget) == len(set().union(*seen)) and len(seen) == 4
    assert all(a.isdisjoint(b) for i, a in enumerate(seen) for b in seen[i + 1:])
    assert result["forgotten"][-1] <= base_rate_interval(len(split.forget) * 2, 1 / 12)[1]
    assert result["retain"][0] >= result["retain"][-1]


# ---- fact edits ----

def test_constrained_fine_tuning_stays_in_its_box_and_touches_one_projection(corpus, original):
    model, tokenizer = original
    request = edit_requests(corpus, corpus.trainable, 1, seed=0)[0]
    editor = ConstrainedFineTuning(layer=0, epsilon=1e-3, steps=5)
    edited = editor.edit(model, tokenizer, request)
    chosen = {id(p) for p in mlp_projection(model, 0)[1].parameters()}  # its weight and its bias
    for (name, before), after in zip(model.named_parameters(), edited.parameters()):
        if id(before) in chosen:
            assert (after - before).abs().max() <= 1e-3 + 1e-7 and not torch.equal(after, before)
        else:
            assert torch.equal(after, before), name


def test_rome_writes_one_rank_one_update_to_its_projection_only(corpus, original):
    model, tokenizer = original
    request = edit_requests(corpus, corpus.trainable, 1, seed=1)[0]
    rome = ROME(v_steps=3)
    assert rome.layer_of(model) == 0  # ROME's depth of a 2-layer model
    edited = rome.edit(model, tokenizer, request, prefixes=[], key_texts=corpus.training_texts(corpus.trainable))
    before, after = mlp_projection(model, 0)[1].weight, mlp_projection(edited, 0)[1].weight
    assert torch.linalg.matrix_rank((after - before).double(), rtol=1e-6) == 1
    changed = [n for (n, a), b in zip(model.named_parameters(), edited.parameters()) if not torch.equal(a, b)]
    assert changed == ["transformer.h.0.mlp.c_proj.weight"]
    with pytest.raises(UnlearnInputError, match="no layer 5"):
        ROME(layer=5).edit(model, tokenizer, request, prefixes=[], key_texts=["x"])


def test_counterfact_of_an_edit_that_changes_nothing(corpus, original):
    """Known answers: a model that knows every fact prefers the old answer on every rewrite and
    paraphrase prompt (efficacy 0), and its specificity is the unedited one's exactly."""
    model, tokenizer = original
    requests = edit_requests(corpus, corpus.trainable, 3, seed=2)
    scores = counterfact_scores(model, tokenizer, corpus, requests, lambda m, tok, r: m)
    assert scores["efficacy"] == 0.0 == scores["says_new"]
    assert scores["specificity"] == scores["original_specificity"] == 100.0
    assert scores["edits"] == 3
