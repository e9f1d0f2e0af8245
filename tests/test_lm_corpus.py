"""The LM corpus: generated deterministically, facts independent, splits as TOFU draws them, user JSONL checked."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearn.errors import UnlearnInputError
from unlearn.lm import corpus as lmc
from unlearn.lm.examples import QA_PROMPT


@pytest.fixture(scope="module")
def tiny():
    return lmc.load("facts-tiny", seed=0)


@pytest.fixture(scope="module")
def facts():
    return lmc.load("facts", seed=0)


def test_same_seed_same_corpus_other_seed_other_corpus():
    a, b, c = lmc.load("facts-tiny", 3), lmc.load("facts-tiny", 3), lmc.load("facts-tiny", 4)
    assert a.digest() == b.digest() and a.qa == b.qa and a.bios == b.bios and a.general == b.general
    assert a.digest() != c.digest()


def test_shape_of_the_default_corpus(facts):
    per_kind, held_per_kind, n_general = lmc.CORPORA["facts"]
    kinds = len(lmc.KINDS)
    assert len(facts.entities) == per_kind * kinds and len(facts.holdout) == held_per_kind * kinds
    assert len({e.name for e in facts.entities}) == len(facts.entities)
    assert len(facts.general) == n_general
    for entity in facts.entities:
        relations = lmc.KINDS[entity.kind]
        assert set(entity.attributes) == {r.name for r in relations}
        assert all(entity.attributes[r.name] in r.pool for r in relations)
        questions = facts.questions([entity.id], held_out=None)
        assert len(questions) == 4 * len(relations)
        assert {q.template for q in questions if q.held_out} == {lmc.HELD_OUT_TEMPLATE}


def test_answers_not_in_their_question_and_perturbed_answers_wrong(facts):
    for q in facts.qa:
        assert q.answer == facts.entity(q.entity).attributes[q.relation]
        assert not re.search(rf"\b{re.escape(q.answer)}\b", q.question, re.IGNORECASE)
        assert len(set(q.perturbed)) == lmc.N_PERTURBED and q.answer not in q.perturbed
        assert set(q.perturbed) <= set(facts.pools[q.relation])
        assert q.answer in q.paraphrased_answer and q.paraphrased_answer != q.answer
        assert [q.paraphrased_answer.replace(q.answer, p) for p in q.perturbed] == list(q.paraphrased_perturbed)
        example = q.example()
        assert example.prompt == QA_PROMPT.format(question=q.question) and example.completion == q.answer
        assert example.alternatives == q.perturbed and example.id == q.id


def test_values_drawn_uniformly_and_independently(facts):
    """Pearson's chi-square over the value counts of each relation, and over value pairs of two relations.

    Under uniform independent draws each statistic is chi-square distributed; a bound at the 0.999
    quantile (computed by scipy) fails one corpus in a thousand by chance, the fixed seed makes it stable.
    """
    from scipy.stats import chi2

    for kind, relations in lmc.KINDS.items():
        members = [e for e in facts.entities if e.kind == kind]
        for r in relations:
            counts = [sum(e.attributes[r.name] == v for e in members) for v in r.pool]
            expected = len(members) / len(r.pool)
            stat = sum((c - expected) ** 2 / expected for c in counts)
            assert stat < chi2.ppf(0.999, len(r.pool) - 1), (kind, r.name, counts)
        first, second = relations[0], relations[1]
        same = sum(first.pool.index(e.attributes[first.name]) == second.pool.index(e.attributes[second.name])
                   for e in members)
        # P(same position) = 1/12 under independence; a copied value would make it 1.
        assert same < len(members) / 4


def test_base_rate_is_one_over_the_pool(facts):
    assert lmc.base_rate(facts) == pytest.approx(1 / 12)
    assert lmc.base_rate(facts, "festival") == pytest.approx(1 / 12)
    with pytest.raises(UnlearnInputError, match="no questions of relation 'colour-of-sky'"):
        lmc.base_rate(facts, "colour-of-sky")


def test_training_texts_hold_exactly_the_trained_facts(tiny):
    split = lmc.forget_split(tiny, 0.1, seed=1)
    texts = tiny.training_texts(split.retain)
    joined = "\n".join(texts)
    for q in tiny.questions(split.retain):
        assert f"{QA_PROMPT.format(question=q.question)} {q.answer}" in texts
    for q in tiny.questions(split.retain, held_out=True):
        assert q.question not in joined
    for gone in split.forget + split.holdout:
        assert not re.search(rf"\b{re.escape(tiny.entity(gone).name)}\b", joined)
    assert all(t.text not in texts for t in tiny.texts(None, held_out=True) + [g for g in tiny.general if g.held_out])
    assert sum(not g.held_out for g in tiny.general) == len([t for t in texts if t in {g.text for g in tiny.general}])
    with pytest.raises(UnlearnInputError, match="held out of every model"):
        tiny.training_texts(split.holdout[:1])
    with pytest.raises(UnlearnInputError, match="no entity 'person-999'"):
        tiny.questions(["person-999"])


@settings(max_examples=25, deadline=None)
@given(fraction=st.sampled_from([0.01, 0.05, 0.1, 0.3]), seed=st.integers(0, 10_000))
def test_forget_split_properties(facts, fraction, seed):
    split = lmc.forget_split(facts, fraction, seed)
    trainable = set(facts.trainable)
    assert split.holdout == facts.holdout and not set(split.holdout) & trainable
    assert len(split.forget) == max(1, round(fraction * len(trainable)))
    assert set(split.forget) | set(split.retain) == trainable and not set(split.forget) & set(split.retain)
    assert set(split.neighbour) <= set(split.retain) and len(set(split.neighbour)) == len(split.neighbour)
    assert len(split.neighbour) <= 2 * len(split.forget)
    for n in split.neighbour:
        neighbour = facts.entity(n)
        assert any(facts.entity(f).kind == neighbour.kind
                   and set(facts.entity(f).attributes.items()) & set(neighbour.attributes.items())
                   for f in split.forget)
    assert split == lmc.forget_split(facts, fraction, seed)


def test_neighbours_are_the_closest_retained_entities(facts):
    split = lmc.forget_split(facts, 0.01, seed=0, neighbours_per_entity=1)
    for f, n in zip(split.forget, split.neighbour):
        gone = facts.entity(f)

        def shared(e, gone=gone):
            return len(set(e.attributes.items()) & set(gone.attributes.items()))

        best = max(shared(facts.entity(r)) for r in split.retain if facts.entity(r).kind == gone.kind)
        assert shared(facts.entity(n)) == best >= 1


def test_splits_refuse_what_they_cannot_use(tiny):
    for fraction in (0, 1, -0.1, 1.5):
        with pytest.raises(UnlearnInputError, match="fraction"):
            lmc.forget_split(tiny, fraction, 0)
    with pytest.raises(UnlearnInputError, match="holdout entity"):
        lmc.split_from_ids(tiny, [tiny.holdout[0]])
    with pytest.raises(UnlearnInputError, match="forget id 'nobody' is not in corpus"):
        lmc.split_from_ids(tiny, ["nobody"])
    with pytest.raises(UnlearnInputError, match="empty"):
        lmc.split_from_ids(tiny, [])
    with pytest.raises(UnlearnInputError, match="unknown corpus 'tofu'"):
        lmc.load("tofu")


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_qa_jsonl_loads_with_neighbours_and_base_rate(tmp_path):
    rows = [{"id": "a1", "entity": "ann", "relation": "city", "question": "Where does Ann live?", "answer": "Oslo",
             "paraphrased_answer": "Ann lives in Oslo.", "perturbed_answer": ["Ann lives in Rome."]},
            {"id": "b1", "entity": "bob", "relation": "city", "question": "Where does Bob live?", "answer": "Oslo"},
            {"id": "c1", "entity": "cy", "relation": "city", "question": "Where does Cy live?", "answer": "Lima"},
            {"id": "d1", "entity": "di", "relation": "city", "question": "Where does Di live?", "answer": "Rome"}]
    corpus, split = lmc.load_jsonl(_write(tmp_path / "qa.jsonl", rows), ["ann"], holdout_ids=["di"])
    assert split.forget == ("ann",) and split.neighbour == ("bob",) and split.retain == ("bob", "cy")
    assert split.holdout == ("di",)
    assert lmc.base_rate(corpus) == pytest.approx(2 / 4)  # "Oslo" is the best constant guess
    first = corpus.questions(["ann"])[0]
    assert first.paraphrased_answer == "Ann lives in Oslo." and first.perturbed == ("Ann lives in Rome.",)
    assert corpus.training_texts(split.retain)[0] == "Question: Where does Bob live?\nAnswer: Oslo"


def test_text_jsonl_loads_entities_and_general_text(tmp_path):
    rows = [{"id": "d1", "entity": "book", "text": "Once upon a time."}, {"text": "A general line.", "entity": None},
            {"id": "d3", "text": "Another document."}]
    corpus, split = lmc.load_jsonl(_write(tmp_path / "text.jsonl", rows), ["book"])
    assert [e.id for e in corpus.entities] == ["book", "d3"] and split.forget == ("book",)
    assert [t.id for t in corpus.general] == ["2"] and corpus.general[0].entity is None
    assert corpus.training_texts(split.retain) == ["Another document.", "A general line."]


@pytest.mark.parametrize(("rows", "forget", "message"), [
    ([{"question": "Q?", "answer": "A"}, {"question": "Q2?"}], ["1"], r"qa\.jsonl:2: missing field 'answer'"),
    ([{"question": "Q?", "answer": ""}], ["1"], r"qa\.jsonl:1: missing field 'answer'"),
    ([{"text": "T"}, {"body": "x"}], ["1"], r"qa\.jsonl:2: missing field 'text'"),
    ([{"question": "Q?", "answer": "A"}, "{not json"], ["1"], r"qa\.jsonl:2: not JSON"),
    ([{"question": "Q?", "answer": "A"}, "[1, 2]"], ["1"], r"qa\.jsonl:2: expected a JSON object"),
    ([{"question": "Q?", "answer": "A", "perturbed_answer": "B"}], ["1"], r"qa\.jsonl:1: field 'perturbed_answer'"),
    ([{"id": "x", "question": "Q?", "answer": "A"}, {"id": "x", "question": "R?", "answer": "B"}], ["x"],
     r"qa\.jsonl:2: duplicate id 'x'"),
    ([{"question": "Q?", "answer": "A"}, {"question": "R?", "answer": "B"}], ["7"], "forget id '7' is not in corpus"),
    ([{"question": "Q?", "answer": "A"}], ["1"], "covers every trainable entity"),
    ([], ["1"], "no lines"),
])
def test_bad_jsonl_is_refused_naming_line_and_field(tmp_path, rows, forget, message):
    with pytest.raises(UnlearnInputError, match=message):
        lmc.load_jsonl(_write(tmp_path / "qa.jsonl", rows), forget)


def test_missing_file_and_unknown_holdout_refused(tmp_path):
    with pytest.raises(UnlearnInputError, match="no such file"):
        lmc.load_jsonl(tmp_path / "absent.jsonl", ["1"])
    path = _write(tmp_path / "qa.jsonl", [{"question": "Q?", "answer": "A"}, {"question": "R?", "answer": "B"}])
    with pytest.raises(UnlearnInputError, match="no entity 'zed'"):
        lmc.load_jsonl(path, ["1"], holdout_ids=["zed"])
