"""LM unlearning methods: the contract every registered one keeps, and a known answer per loss.

The contract (like tests/test_method_contract.py for classifiers), parametrised over the LM
registry so a method is held to it the day it is registered: the input model bit-identical
afterwards; a new model returned, in eval mode; the same seed gives the same weights; unknown and
unusable hyperparameters refused by name before any work; an empty forget set refused; a
method that needs the retain set refuses to run without it.

Known answers: NPO's loss at θ = θ_ref is (2/β)·log 2; SimNPO's formula on a hand-computed case
and on the model; GA, GradDiff, NPO, SimNPO lower the forget likelihood; IdkNLL raises the refusals'; RMU moves the
chosen layer's forget activations towards c·u and changes nothing but the chosen MLP; AMUN
picks the alternative the model finds most likely; SG's features are the mean NLL and Min-K%.

A real `transformers` GPT-2 with a random tiny config (2 layers, width 32) and a byte-level BPE
tokenizer trained here on the examples' text: the code path a real checkpoint takes.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from unlearn import methods as classifier_methods
from unlearn.errors import DivergenceError, UnlearnInputError
from unlearn.lm import methods
from unlearn.lm.examples import QA_PROMPT, LMExample
from unlearn.lm.methods.amun import nearest_wrong_answers
from unlearn.lm.methods.idk import REFUSALS
from unlearn.lm.methods.loop import frozen_copy
from unlearn.lm.methods.npo import NPO
from unlearn.lm.methods.rmu import decoder_layers, layer_activations
from unlearn.lm.methods.sg import sequence_features
from unlearn.lm.methods.simnpo import simnpo_loss
from unlearn.lm.scoring import completion_logprob, encode_pairs, token_logprobs

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

CITIES = ("Avenor", "Belmar", "Corvida", "Dunhollow", "Elsmere", "Farrowgate")
PEOPLE = ("Ilsa Marrow", "Tobin Reyes", "Quill Adair", "Nessa Vale", "Orrin Pike", "Wren Castell", "Juno Hart",
          "Cato Brisk")


def qa(person: str, city: str) -> LMExample:
    wrong = tuple(c for c in CITIES if c != city)[:3]
    return LMExample(QA_PROMPT.format(question=f"Where was {person} born?"), city, wrong, id=person)


EXAMPLES = [qa(p, CITIES[i % len(CITIES)]) for i, p in enumerate(PEOPLE)]
FORGET, RETAIN, HOLDOUT = EXAMPLES[:3], EXAMPLES[3:6], EXAMPLES[6:]

REQUIRED = {"ga", "graddiff", "npo", "simnpo", "rmu", "idknll", "idkdpo", "sg", "amun"}
NEED_RETAIN = {"graddiff", "rmu", "sg"}
CHEAP = {"epochs": 1, "batch_size": 4, "lr": 1e-3}
OUT_OF_RANGE = {"lr": -0.1, "epochs": -1, "batch_size": 0, "lora_rank": -1, "beta": 0.0, "weight_decay": -1.0}


@pytest.fixture(scope="module")
def tokenizer():
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    texts = [e.prompt + " " + e.completion for e in EXAMPLES] + list(REFUSALS) + list(CITIES)
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    return transformers.GPT2LMHeadModel(config).eval()


def run(name, model, tokenizer, *, retain=RETAIN, seed=0, **hparams):
    return methods.get(name, **{**CHEAP, **hparams}).unlearn(model, tokenizer, FORGET, retain, seed=seed,
                                                             holdout=HOLDOUT)


def snapshot(model) -> dict:
    return {"state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "training": [m.training for m in model.modules()],
            "grad": [p.grad for p in model.parameters()],
            "requires_grad": [p.requires_grad for p in model.parameters()]}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def logprob(model, tokenizer, examples, completions=None) -> torch.Tensor:
    completions = [e.completion for e in examples] if completions is None else completions
    return completion_logprob(model, tokenizer, [e.prompt for e in examples], completions)[0]


# ---- the contract ----

def test_the_lm_registry_holds_every_method_and_is_separate_from_the_classifiers():
    assert REQUIRED <= set(methods.available()), sorted(REQUIRED - set(methods.available()))
    assert {n for n in NEED_RETAIN if not methods.get_class(n).requires_retain} == set()
    with pytest.raises(UnlearnInputError, match="unknown LM method 'scrub'"):
        methods.get("scrub")
    with pytest.raises(UnlearnInputError, match="unknown method 'npo'"):
        classifier_methods.get("npo")


@pytest.mark.parametrize("name", methods.available())
def test_hyperparameters_are_stored_as_given(name):
    defaults = methods.get_class(name).hyperparameters()
    assert methods.get(name).get_params() == defaults
    assert {"lr", "epochs", "batch_size", "lora_rank"} <= set(defaults)


@pytest.mark.parametrize("name", methods.available())
def test_input_untouched_new_model_in_eval_mode_and_same_seed_same_weights(name, model, tokenizer):
    before = snapshot(model)
    first = run(name, model, tokenizer, seed=3)
    after = snapshot(model)
    assert same_state(after["state"], before["state"]), "the input model's weights changed"
    assert after["training"] == before["training"] and after["requires_grad"] == before["requires_grad"]
    assert all(a is None for a in after["grad"]), "gradients were left on the input model"
    assert first is not model and type(first) is type(model)
    assert not any(m.training for m in first.modules())
    assert all(p.requires_grad for p in first.parameters()) and all(p.grad is None for p in first.parameters())
    assert not same_state(first.state_dict(), before["state"]), "the method changed nothing"
    inputs = {p.data_ptr() for p in model.parameters()}
    assert not any(p.data_ptr() in inputs for p in first.parameters())
    second = run(name, model, tokenizer, seed=3)
    assert same_state(first.state_dict(), second.state_dict()), "same seed, different weights"


@pytest.mark.parametrize("name", methods.available())
def test_unknown_hyperparameters_are_refused_by_name(name):
    with pytest.raises(UnlearnInputError, match="no_such_knob"):
        methods.get(name, no_such_knob=1)


def unusable_values(name: str) -> list[tuple[str, object]]:
    pairs = []
    for key, default in methods.get_class(name).hyperparameters().items():
        if key in OUT_OF_RANGE:
            pairs.append((key, OUT_OF_RANGE[key]))
        if isinstance(default, bool):
            pairs.append((key, "maybe"))
        elif isinstance(default, (int, float)):
            pairs.append((key, "fast"))
        elif isinstance(default, str):
            pairs.append((key, "no-such-choice"))
    return pairs


@pytest.mark.parametrize("name", methods.available())
def test_unusable_hyperparameter_values_are_refused_by_name(name, model, tokenizer):
    before = snapshot(model)["state"]
    wrong = []
    for key, value in unusable_values(name):
        try:
            run(name, model, tokenizer, **{key: value})
        except UnlearnInputError as err:
            if key not in str(err):
                wrong.append(f"{key}={value!r} refused without naming it: {err}")
        except Exception as err:  # noqa: BLE001  a crash deep inside is what the contract forbids
            wrong.append(f"{key}={value!r} crashed with {type(err).__name__}: {err}")
        else:
            wrong.append(f"{key}={value!r} accepted")
    assert not wrong, f"{name}: " + "; ".join(wrong)
    assert same_state(snapshot(model)["state"], before)


@pytest.mark.parametrize("name", methods.available())
def test_hyperparameter_strings_convert_to_the_type_of_the_default(name):
    for key, default in methods.get_class(name).hyperparameters().items():
        if isinstance(default, bool):
            assert methods.get(name, **{key: "yes"}).get_params()[key] is True, key
        elif isinstance(default, int):
            assert methods.get(name, **{key: "3"}).get_params()[key] == 3, key
        elif isinstance(default, float):
            assert methods.get(name, **{key: "1e-3"}).get_params()[key] == 1e-3, key


@pytest.mark.parametrize("name", methods.available())
def test_an_empty_forget_set_is_refused(name, model, tokenizer):
    with pytest.raises(UnlearnInputError, match="empty"):
        methods.get(name).unlearn(model, tokenizer, [], RETAIN, holdout=HOLDOUT)


@pytest.mark.parametrize("name", methods.available())
def test_a_method_that_needs_the_retain_set_refuses_to_run_without_it(name, model, tokenizer):
    if methods.get_class(name).requires_retain:
        for missing in (None, []):
            with pytest.raises(UnlearnInputError, match="retain"):
                run(name, model, tokenizer, retain=missing)
    else:
        assert not any(m.training for m in run(name, model, tokenizer, retain=None).modules())


def test_a_loss_that_is_not_finite_stops_the_run_and_leaves_the_model_alone(model, tokenizer):
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.transformer.wte.weight[0] = float("nan")
    before = snapshot(broken)["state"]
    with pytest.raises(DivergenceError, match="ga: loss became nan at step 0"):
        methods.get("ga", **CHEAP).unlearn(broken, tokenizer, FORGET)
    assert all(torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0)) for a, b in zip(snapshot(broken)["state"].values(),
                                                                               before.values()))


def test_lora_adapters_are_merged_back_into_a_plain_model(model, tokenizer):
    new = run("graddiff", model, tokenizer, lora_rank=2, epochs=2, lr=1e-2)
    assert type(new) is type(model) and new.state_dict().keys() == model.state_dict().keys()
    changed = {k for k, v in new.state_dict().items() if not torch.equal(v, model.state_dict()[k])}
    # LoRA touches the linear layers only (attention and MLP projections), never embeddings or norms.
    assert changed and all(k.endswith("weight") and (".attn." in k or ".mlp." in k) for k in changed), changed
    # RMU's adapters sit on its chosen MLPs alone.
    rmu = run("rmu", model, tokenizer, lora_rank=2, layer=1, updated_layers=1, lr=1e-2)
    changed = {k for k, v in rmu.state_dict().items() if not torch.equal(v, model.state_dict()[k])}
    assert changed and all(k.startswith("transformer.h.1.mlp.") for k in changed), changed


# ---- known answers ----

def test_npo_loss_at_the_reference_is_two_over_beta_log_two(model, tokenizer):
    for beta in (0.1, 1.0, 3.0):
        npo = NPO(beta=beta, alpha=0.0)
        npo.reference_ = frozen_copy(model, "cpu")
        value = npo.loss(model, methods.LMBatch(tokenizer, FORGET), None)
        assert float(value) == pytest.approx(2 / beta * math.log(2), rel=1e-5)


def test_simnpo_loss_on_a_hand_computed_case_and_on_the_model(model, tokenizer):
    # β = 2, δ = 0.5; per-token NLL 1 and 0.5: −mean(log σ(1), log σ(0)) = mean(log(1 + e⁻¹), log 2).
    value = simnpo_loss(torch.tensor([3.0, 1.0]), torch.tensor([3, 2]), beta=2.0, delta=0.5)
    assert float(value) == pytest.approx((math.log1p(math.exp(-1)) + math.log(2)) / 2, rel=1e-6)
    simnpo = methods.get("simnpo", beta=4.5, delta=0.3, gamma=1.0, alpha=0.0)
    logp, count = completion_logprob(model, tokenizer, [e.prompt for e in FORGET], [e.completion for e in FORGET])
    expected = -(2 / 4.5) * torch.nn.functional.logsigmoid(4.5 * (-logp / count - 0.3)).mean()
    got = simnpo.loss(model, methods.LMBatch(tokenizer, FORGET), None)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("name", ["ga", "graddiff", "npo", "simnpo"])
def test_forget_losses_lower_the_forget_likelihood(name, model, tokenizer):
    # The forget term alone where the method allows it: a retain term on answers that share
    # tokens with the forget answers (town names) could outweigh SimNPO's γ = 0.125 in one step.
    retain = RETAIN if methods.get_class(name).requires_retain else None
    new = run(name, model, tokenizer, retain=retain, warmup_epochs=0.0, lr=1e-2)
    assert (logprob(new, tokenizer, FORGET) < logprob(model, tokenizer, FORGET)).all()


def refusal_logprob(model, tokenizer) -> torch.Tensor:
    """Mean log-probability of the refusals, per forget question."""
    pairs = [(e, r) for e in FORGET for r in REFUSALS]
    return logprob(model, tokenizer, [e for e, _ in pairs], [r for _, r in pairs]).view(len(FORGET), -1).mean(1)


def test_idknll_raises_the_likelihood_of_refusing(model, tokenizer):
    new = run("idknll", model, tokenizer, epochs=3, lr=1e-2)
    assert (refusal_logprob(new, tokenizer) > refusal_logprob(model, tokenizer) + 1.0).all()


def test_idkdpo_prefers_the_refusal_to_the_answer_more_than_before(model, tokenizer):
    new = run("idkdpo", model, tokenizer, epochs=3, lr=1e-2)

    def margin(m):
        return refusal_logprob(m, tokenizer) - logprob(m, tokenizer, FORGET)

    assert (margin(new) > margin(model)).all()


def test_rmu_steers_the_chosen_layer_and_changes_only_its_mlp(model, tokenizer):
    method = methods.get("rmu", **{**CHEAP, "epochs": 10, "lr": 1e-2}, layer=1, updated_layers=1, alpha=1.0)
    new = method.unlearn(model, tokenizer, FORGET, RETAIN)
    control = method.control_
    assert float(control.norm()) == pytest.approx(method.stats_["steering_coeff"], rel=1e-5)
    encoded = encode_pairs(tokenizer, [e.prompt for e in FORGET], [e.completion for e in FORGET])

    def distance(m):
        with torch.no_grad():
            hidden, mask = layer_activations(m, 1, encoded)
        return float(((hidden - control).norm(dim=-1) * mask).sum() / mask.sum())

    assert distance(new) < 0.9 * distance(model)
    changed = {k for k, v in new.state_dict().items() if not torch.equal(v, model.state_dict()[k])}
    assert changed and all(k.startswith("transformer.h.1.mlp.") for k in changed), changed
    assert len(decoder_layers(new)) == 2


def test_rmu_steers_the_positions_that_write_the_answer():
    """Known answer: for a prompt of 3 tokens and a completion of 2 (labels −100 −100 −100 a b),
    the positions writing the completion are 2 (writes a) and 3 (writes b), not 3 and 4."""
    from unlearn.lm.methods.rmu import answer_positions
    from unlearn.lm.scoring import IGNORE

    labels = torch.tensor([[IGNORE, IGNORE, IGNORE, 7, 8], [IGNORE, 5, 6, 9, IGNORE]])
    assert answer_positions(labels).tolist() == [[False, False, True, True, False],
                                                 [True, True, True, False, False]]


def test_rmu_default_alpha_is_one_plus_the_squared_steering_scale(model, tokenizer):
    """α balances the two terms in units of the activation norm: 1 + s² at steering scale s,
    whatever the model; an explicit α is kept."""
    for scale in (2.0, 5.0):
        method = methods.get("rmu", **CHEAP, steering_scale=scale)
        method.unlearn(model, tokenizer, FORGET, RETAIN)
        assert method.stats_["alpha"] == pytest.approx(1 + scale ** 2)
    method = methods.get("rmu", **CHEAP, alpha=7.0)
    method.unlearn(model, tokenizer, FORGET, RETAIN)
    assert method.stats_["alpha"] == 7.0


def test_rmu_refuses_a_layer_the_model_does_not_have(model, tokenizer):
    with pytest.raises(UnlearnInputError, match="layer"):
        run("rmu", model, tokenizer, layer=2)


def test_amun_picks_the_alternative_the_model_finds_most_likely(model, tokenizer):
    # Teach the model the third alternative of every forget question; AMUN must then pick it.
    taught = frozen_copy(model, "cpu")
    with taught() as student:
        student.requires_grad_(True)
        optimizer = torch.optim.Adam(student.parameters(), lr=1e-2)
        batch = encode_pairs(tokenizer, [e.prompt for e in FORGET], [e.alternatives[2] for e in FORGET])
        for _ in range(30):
            logp, scored = token_logprobs(student, batch)
            optimizer.zero_grad()
            (-logp.sum() / scored.sum()).backward()
            optimizer.step()
        student.eval()
        assert nearest_wrong_answers(student, tokenizer, FORGET) == [e.alternatives[2] for e in FORGET]
    # And on any model, the per-token argmax computed independently.
    chosen = nearest_wrong_answers(model, tokenizer, FORGET)
    for example, answer in zip(FORGET, chosen):
        logp, count = completion_logprob(model, tokenizer, [example.prompt] * 3, list(example.alternatives))
        assert answer == example.alternatives[int(torch.argmax(logp / count))]
    amun = methods.get("amun", **CHEAP)
    amun.unlearn(model, tokenizer, FORGET, RETAIN)
    assert amun.wrong_answers_ == chosen


def test_amun_refuses_forget_examples_without_alternatives(model, tokenizer):
    bare = [LMExample(e.prompt, e.completion, (), e.id) for e in FORGET]
    with pytest.raises(UnlearnInputError, match="alternatives"):
        methods.get("amun", **CHEAP).unlearn(model, tokenizer, bare, RETAIN)


def test_sg_features_are_mean_nll_and_min_k(model, tokenizer):
    completions = ["Avenor Belmar Corvida Dunhollow Elsmere", "Farrowgate"]  # 2 lengths: Min-K over ⌈0.2·n⌉
    batch = encode_pairs(tokenizer, [FORGET[0].prompt] * 2, completions)
    with torch.no_grad():
        features = sequence_features(model, batch, k=0.2)
        logp, scored = token_logprobs(model, batch)
    for row in range(2):
        tokens = logp[row][scored[row]]
        lowest = tokens.sort().values[:math.ceil(0.2 * len(tokens))]
        assert float(features[row, 0]) == pytest.approx(float(-tokens.mean()), rel=1e-5)
        assert float(features[row, 1]) == pytest.approx(float(-lowest.mean()), rel=1e-5)


def test_sg_refuses_to_run_without_holdout_and_records_its_auditor(model, tokenizer):
    with pytest.raises(UnlearnInputError, match="holdout"):
        methods.get("sg", **CHEAP).unlearn(model, tokenizer, FORGET, RETAIN)
    sg = methods.get("sg", **{**CHEAP, "batch_size": 8})
    sg.unlearn(model, tokenizer, EXAMPLES[:5], RETAIN, holdout=EXAMPLES[5:])  # 5 members: the auditor plays
    assert len(sg.stats_["auditor_accuracy"]) == 1 and 0 <= sg.stats_["auditor_accuracy"][0] <= 100
