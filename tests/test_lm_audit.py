"""LM audits (unlearn.lm.audit): known answers on models whose outputs are known exactly.

A tiny GPT-2 whose final layer norm outputs a constant and whose output head reads one coordinate
is a *unigram* model: the same next-token distribution q at every position, chosen by the test.
Every audit then has a closed form (a uniform q is a model indifferent between all answers), so
the tests check the audits' arithmetic, not just that they run. A random tiny GPT-2 checks the
null (a model that never saw a text: Min-K%++ AUC ≈ 50) and one trained a few seconds on some
texts checks that the attack does see membership.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from unlearn.audit.gap import gap_standard_error
from unlearn.errors import UnlearnInputError
from unlearn.lm import corpus as lm_corpus
from unlearn.lm.audit import (
    GAP_LM,
    TERMS,
    answer_accuracy,
    answer_probability,
    evaluate_lm,
    forget_quality,
    forget_score,
    knowledge_memorisation,
    lm_gaps,
    mia_auc,
    min_k_plus_plus,
    model_utility,
    normalise,
    perplexity,
    priv_leak,
    retain_score,
    rouge_l,
    term_standard_errors,
    truth_ratio,
    verbatim_memorisation,
)
from unlearn.lm.audit.generate import greedy_continuations
from unlearn.lm.examples import QA_PROMPT, LMExample

WORDS = ("amber basil cedar dune ember fjord glade heron iris juniper kelp lichen maple nectar onyx pebble quartz "
         "raven sorrel thistle umber violet willow yarrow zephyr").split()


def random_texts(n: int, rng: np.random.Generator, length: int = 12) -> list[str]:
    return [" ".join(rng.choice(WORDS, length)) for _ in range(n)]


@pytest.fixture(scope="module")
def corpus():
    return lm_corpus.load("facts-tiny")


@pytest.fixture(scope="module")
def tokenizer(corpus):
    """A byte-level BPE trained here on the tiny corpus and the test's word list."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [q.example().prompt + " " + q.answer + " " + q.paraphrased_answer for q in corpus.qa]
    texts += [t.text for t in corpus.bios + corpus.general] + [" ".join(WORDS)] * 200
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def tiny_gpt2(tokenizer, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        tie_word_embeddings=False)
    return GPT2LMHeadModel(config).eval()


def unigram_model(tokenizer, log_q: torch.Tensor) -> GPT2LMHeadModel:
    """Next-token log-probabilities log_q (normalised here) at every position, whatever the context."""
    model = tiny_gpt2(tokenizer)
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[:, 0] = torch.log_softmax(log_q.double(), 0).float()
    return model


def token_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def favouring(tokenizer, word: str, mass: float = 0.9) -> tuple[GPT2LMHeadModel, torch.Tensor]:
    """A unigram model putting `mass` on the single token " word", the rest spread evenly."""
    (favoured,) = token_ids(tokenizer, " " + word)
    size = len(tokenizer)
    q = torch.full((size,), (1 - mass) / (size - 1), dtype=torch.float64)
    q[favoured] = mass
    return unigram_model(tokenizer, q.log()), q


# ---------------------------------------------------------------------------------------------
# TOFU: truth ratio, forget quality, model utility


def test_truth_ratio_of_an_indifferent_model_is_one(corpus, tokenizer):
    uniform = unigram_model(tokenizer, torch.zeros(len(tokenizer)))
    items = corpus.questions(corpus.trainable[:3])
    ratios = truth_ratio(uniform, tokenizer, items)
    # every token has probability 1/V, so every answer's P^(1/|a|) is 1/V whatever its length; the
    # scores are float32 log-probabilities (|log 1/V| ≈ 6.4), each exact to a few float32 epsilons
    tolerance = 16 * float(np.finfo(np.float32).eps) * math.log(len(tokenizer))
    assert np.allclose(ratios, 1.0, rtol=0, atol=tolerance)
    assert forget_score(ratios) == pytest.approx(1.0, abs=tolerance)
    assert retain_score(ratios) == pytest.approx(0.0, abs=tolerance)


def test_truth_ratio_matches_its_closed_form_on_a_unigram_model(tokenizer):
    model, q = favouring(tokenizer, "maple")
    log_q = q.log().numpy()
    examples = [LMExample(QA_PROMPT.format(question="Which tree?"), "maple", ("cedar", "willow kelp")),
                LMExample(QA_PROMPT.format(question="Which stone?"), "onyx quartz", ("maple",))]
    expected = []
    for e in examples:
        normalised = lambda answer: log_q[token_ids(tokenizer, " " + answer)].mean()  # noqa: E731
        expected.append(math.exp(np.mean([normalised(w) for w in e.alternatives]) - normalised(e.completion)))
    ratios = truth_ratio(model, tokenizer, examples)
    assert np.allclose(ratios, expected, rtol=1e-6)
    assert ratios[0] < 1 < ratios[1]  # prefers the true "maple"; prefers the wrong "maple"


def test_forget_quality_is_one_for_identical_distributions_and_small_for_different_ones():
    rng = np.random.default_rng(0)
    sample = rng.lognormal(size=50)
    assert forget_quality(sample, sample) == 1.0
    assert forget_quality(sample, rng.permutation(sample)) == 1.0
    assert forget_quality(sample, sample + 10) < 1e-10
    with pytest.raises(UnlearnInputError, match="both models"):
        forget_quality([], sample)


def test_model_utility_is_the_harmonic_mean_of_its_parts():
    assert model_utility({"a": 1.0, "b": 0.5}) == pytest.approx(2 / 3)
    assert model_utility({"a": 0.9, "b": 0.0, "c": 0.7}) == 0.0
    with pytest.raises(UnlearnInputError, match=r"\[0, 1\]"):
        model_utility({"a": 1.5})


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(tokenizer):
    uniform = unigram_model(tokenizer, torch.zeros(len(tokenizer)))
    assert perplexity(uniform, tokenizer, ["amber basil cedar", "dune ember fjord glade"]) == pytest.approx(len(tokenizer))


# ---------------------------------------------------------------------------------------------
# Answers: exact match and probability; generation


def test_normalise_follows_squad():
    assert normalise("  The Orrin  Vale! ") == "orrin vale"
    assert normalise("an Apple, a pear") == "apple pear"


def test_exact_answer_accuracy_and_probability_on_a_unigram_model(tokenizer):
    model, q = favouring(tokenizer, "maple")
    right = [LMExample(QA_PROMPT.format(question=f"Question {i}?"), "maple") for i in range(3)]
    wrong = [LMExample(QA_PROMPT.format(question="Which tree?"), "cedar")]
    assert answer_accuracy(model, tokenizer, right) == 100.0
    assert answer_accuracy(model, tokenizer, wrong) == 0.0
    assert answer_accuracy(model, tokenizer, right + wrong) == 75.0
    assert np.allclose(answer_probability(model, tokenizer, right + wrong), [0.9] * 3 + [float(q[token_ids(tokenizer, " cedar")[0]])])
    # the free-form answer runs on, "maple" 1 + 8 times: ROUGE-L precision 1/9, recall 1, F1 0.2
    assert knowledge_memorisation(model, tokenizer, right) == pytest.approx(20.0)
    with pytest.raises(UnlearnInputError, match="no questions"):
        answer_accuracy(model, tokenizer, [])


def test_batched_generation_equals_one_prompt_at_a_time(tokenizer):
    model = tiny_gpt2(tokenizer, seed=3)
    prompts = ["amber", "basil cedar dune ember fjord", "glade heron", QA_PROMPT.format(question="Where?")]
    together = greedy_continuations(model, tokenizer, prompts, [5, 3, 7, 4], batch_size=4)
    alone = [greedy_continuations(model, tokenizer, [p], n)[0] for p, n in zip(prompts, [5, 3, 7, 4])]
    assert together == alone
    assert [len(row) for row in together] == [5, 3, 7, 4]  # the random model never emits end-of-text here


# ---------------------------------------------------------------------------------------------
# MUSE: ROUGE-L, VerbMem, KnowMem


def test_rouge_l_known_cases():
    recall, f1 = rouge_l(["the cat sat on the mat", "the cat", "a b c"], ["the cat sat", "the cat", "x y z"])
    # LCS of the first pair is 3 tokens: precision 3/3, recall 3/6, F1 2/3
    assert np.allclose(recall, [0.5, 1.0, 0.0]) and np.allclose(f1, [2 / 3, 1.0, 0.0])
    assert rouge_l(["cats running"], ["cat run"])[1][0] == 0.0
    assert rouge_l(["cats running"], ["cat run"], stem=True)[1][0] == 1.0  # TOFU stems, MUSE does not
    with pytest.raises(UnlearnInputError, match="2 references but 1"):
        rouge_l(["a", "b"], ["a"])


def test_verbatim_memorisation_of_a_model_that_can_only_say_one_word(tokenizer):
    model, _ = favouring(tokenizer, "maple")
    # the continuation of "maple maple ..." is "maple ...": reproduced exactly; of other words, not at all
    assert verbatim_memorisation(model, tokenizer, ["maple " * 9 + "maple", "maple maple maple"]) == pytest.approx(100.0)
    assert verbatim_memorisation(model, tokenizer, ["cedar " * 9 + "cedar"]) == 0.0
    # the prefix is the first 2 tokens, "ma" + "ple"; the true continuation " maple maple cedar" against
    # the model's " maple maple maple": a common subsequence of 2 of 3 words, F1 2/3
    assert token_ids(tokenizer, "maple maple maple cedar")[2:] == token_ids(tokenizer, " maple maple cedar")
    assert verbatim_memorisation(model, tokenizer, ["maple maple maple cedar"], prefix_tokens=2) == pytest.approx(200 / 3)
    with pytest.raises(UnlearnInputError, match="too short"):
        verbatim_memorisation(model, tokenizer, ["m"])


# ---------------------------------------------------------------------------------------------
# Min-K%++ and PrivLeak


def test_min_k_plus_plus_matches_its_closed_form_on_a_unigram_model(tokenizer):
    q = torch.softmax(torch.randn(len(tokenizer), generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2, 0)
    model = unigram_model(tokenizer, q.log())
    log_q = q.log().numpy()
    mu = float((q * q.log()).sum())
    sigma = math.sqrt(float((q * q.log().square()).sum()) - mu**2)
    texts = random_texts(6, np.random.default_rng(2), length=9) + ["amber basil"]
    for k in (0.2, 0.5, 1.0):
        expected = []
        for text in texts:
            z = np.sort((log_q[token_ids(tokenizer, text)[1:]] - mu) / sigma)  # the first token is not scored
            expected.append(z[:max(1, int(len(z) * k))].mean())
        assert np.allclose(min_k_plus_plus(model, tokenizer, texts, k=k, batch_size=3), expected, atol=1e-4)
    with pytest.raises(UnlearnInputError, match=r"\(0, 1\]"):
        min_k_plus_plus(model, tokenizer, texts, k=0)


def null_auc_half_width(members: int, nonmembers: int, z: float = 3.29) -> float:
    """z times the standard error of the empirical AUC (percent) when members and non-members come
    from one distribution (Mann-Whitney's null variance (m + n + 1) / (12 m n)); z = 3.29: 0.1%."""
    return z * 100 * math.sqrt((members + nonmembers + 1) / (12 * members * nonmembers))


def test_min_k_plus_plus_auc_of_a_model_that_never_saw_the_texts_is_fifty(tokenizer):
    texts = random_texts(300, np.random.default_rng(5))
    for seed in (0, 1):
        auc = mia_auc(tiny_gpt2(tokenizer, seed), tokenizer, texts[:150], texts[150:])["auc"]
        assert abs(auc - 50) < null_auc_half_width(150, 150)


def test_min_k_plus_plus_sees_texts_a_model_was_trained_on(tokenizer):
    rng = np.random.default_rng(6)
    members, nonmembers = random_texts(24, rng), random_texts(24, rng)
    model = tiny_gpt2(tokenizer, seed=0).train()
    from unlearn.lm.scoring import encode_pairs, mean_token_nll
    batch = encode_pairs(tokenizer, [""] * len(members), members)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimiser.zero_grad()
        mean_token_nll(model, batch).backward()
        optimiser.step()
    auc = mia_auc(model, tokenizer, members, nonmembers)["auc"]
    assert auc > 50 + null_auc_half_width(24, 24)


def test_priv_leak_known_values():
    assert priv_leak(61.3, 61.3) == 0.0  # Retrain against itself
    assert priv_leak(100.0, 50.0) == -100.0  # forget texts all members: MUSE's "under-unlearned" end
    assert priv_leak(25.0, 50.0) == 50.0  # forget texts look less like members than unseen text
    assert priv_leak(80.0, 100.0) is None  # MUSE's AUC' of the retrained model is 0: undefined


# ---------------------------------------------------------------------------------------------
# gap-lm and evaluate_lm


def test_gap_lm_is_the_mean_absolute_difference_of_its_four_terms():
    model = {"acc": {"forget": 90.0, "neighbour": 70.0, "retain": 80.0}, "minkpp": {"auc": 75.0}}
    retrain = {"acc": {"forget": 10.0, "neighbour": 80.0, "retain": 80.0}, "minkpp": {"auc": 50.0}}
    gaps = lm_gaps(model, retrain)
    assert gaps["acc.forget"] == 80.0 and gaps["acc.neighbour"] == 10.0 and gaps["minkpp.auc"] == 25.0
    assert gaps[GAP_LM] == pytest.approx((80 + 10 + 0 + 25) / 4)
    assert lm_gaps(model, model)[GAP_LM] == 0.0
    no_neighbours = {"acc": {"forget": 90.0, "retain": 80.0}, "minkpp": {"auc": 75.0}}
    assert lm_gaps(no_neighbours, no_neighbours)[GAP_LM] is None  # a gap never drops a term
    with pytest.raises(UnlearnInputError, match="acc.neighbour"):
        lm_gaps(no_neighbours, retrain)
    errors = term_standard_errors({"acc.forget": 50.0, "acc.neighbour": 50.0, "acc.retain": 50.0,
                                   "minkpp.auc_low": 40.0, "minkpp.auc_high": 60.0},
                                  {"forget": 96, "neighbour": 96, "retain": 96})
    assert set(errors) == set(TERMS) and errors["minkpp.auc"] == pytest.approx(10 / stats.norm.ppf(0.975))
    assert gap_standard_error(GAP_LM, errors, TERMS) == pytest.approx(math.sqrt(sum(e**2 for e in errors.values())) / 4)


@pytest.fixture(scope="module")
def split(corpus):
    return lm_corpus.forget_split(corpus, 0.1, seed=0)


@pytest.fixture(scope="module")
def report(corpus, split, tokenizer):
    return evaluate_lm(tiny_gpt2(tokenizer, seed=0), tokenizer, corpus, split, max_questions=60)


def test_evaluate_lm_reports_every_audit(report, corpus, split):
    assert set(report["acc"]) == {"forget", "forget_paraphrased", "neighbour", "retain", "holdout"}
    assert report["sizes"]["forget"] == len(corpus.questions(split.forget))  # 24 < 60: all of them
    assert report["sizes"]["retain"] == 60  # a fixed sample of the retain questions
    assert report["sizes"]["mia_members"] == len(split.forget) * 13  # 12 trained questions and a bio each
    assert all(0 <= v <= 100 for v in report["acc"].values())
    assert 0 <= report["utility"]["model_utility"] <= 1 and len(report["utility"]["parts"]) == 6
    assert report["perplexity"]["general"] > 1 and 0 <= report["verbmem"]["forget"] <= 100
    assert len(report["truth_ratio"]["forget_values"]) == report["sizes"]["forget"]
    assert "gap" not in report  # no reference, no gap


def test_a_model_against_itself_has_no_gap_no_privleak_and_full_forget_quality(report, corpus, split, tokenizer):
    model = tiny_gpt2(tokenizer, seed=0)
    same = evaluate_lm(model, tokenizer, corpus, split, max_questions=60, reference=report)
    assert same["gap"][GAP_LM] == 0.0 and all(same["gap"][k] == 0.0 for k in TERMS)
    assert same["privleak"] == 0.0 and same["forget_quality"] == 1.0
    other = evaluate_lm(tiny_gpt2(tokenizer, seed=1), tokenizer, corpus, split, max_questions=60, reference=model)
    assert other["gap"]["minkpp.auc"] == pytest.approx(abs(other["minkpp"]["auc"] - report["minkpp"]["auc"]))
    with pytest.raises(UnlearnInputError, match="other question or text sets"):
        evaluate_lm(model, tokenizer, corpus, split, max_questions=30, reference=report)
