"""SG and its differentiable auditor, on real digits models.

The implicit gradient is checked against finite differences of the auditor's held-out utility
(re-solving the auditor at every perturbed point) and, when the optional `svm` extra is
installed, against cvxpylayers' gradient of the same problem.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearn import data, methods
from unlearn.errors import UnlearnInputError
from unlearn.methods.sg_auditor import (
    audit,
    audit_tasks,
    auditor_features,
    cvxpylayers_available,
    feature_scale,
    implicit_optimum,
    solve_auditor,
    solve_auditors,
)
from unlearn.models import accuracy, logits


@pytest.fixture(scope="module")
def holdout(digits):
    validation, _ = data.split_holdout(digits.test.y.numpy(), seed=0)
    return digits.test.subset(validation)


@pytest.fixture(scope="module")
def forget(digits, digits_split):
    return digits.train.subset(digits_split.forget)


@pytest.fixture(scope="module")
def retain(digits, digits_split):
    return digits.train.subset(digits_split.retain)


@pytest.fixture(scope="module")
def features(digits_original, forget, holdout):
    """The original model's auditor features on D_F (members) and the holdout (non-members)."""
    return (auditor_features(logits(digits_original, forget), forget.y).double(),
            auditor_features(logits(digits_original, holdout), holdout.y).double())


def utility_and_gradient(member, nonmember, tasks, kind, scale, solver="auto"):
    member, nonmember = member.clone().requires_grad_(True), nonmember.clone().requires_grad_(True)
    utility = audit(member, nonmember, tasks, kind=kind, l2=1e-2, tol=1e-12, scale=scale, solver=solver).utility
    return float(utility), torch.autograd.grad(utility, [member, nonmember])


@pytest.mark.parametrize("kind", ["logistic", "sqhinge"])
def test_implicit_gradient_matches_finite_differences(features, forget, holdout, kind):
    member, nonmember = features
    tasks = audit_tasks(forget.y.numpy(), holdout.y.numpy(), per_class=False, n_splits=2, seed=1)
    scale = feature_scale(member, nonmember, tasks)
    _, (grad_member, grad_nonmember) = utility_and_gradient(member, nonmember, tasks, kind, scale)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        direction_m = torch.randn(member.shape, generator=gen, dtype=torch.float64)
        direction_n = torch.randn(nonmember.shape, generator=gen, dtype=torch.float64)
        h = 1e-5
        plus = audit(member + h * direction_m, nonmember + h * direction_n, tasks, kind=kind, tol=1e-12,
                     scale=scale).utility
        minus = audit(member - h * direction_m, nonmember - h * direction_n, tasks, kind=kind, tol=1e-12,
                      scale=scale).utility
        numeric = float(plus - minus) / (2 * h)
        analytic = float((grad_member * direction_m).sum() + (grad_nonmember * direction_n).sum())
        assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-8)


def test_gradient_through_the_optimum_is_not_just_the_direct_term(features, forget, holdout):
    """The training rows influence U_a only through θ*: their gradient is the implicit term."""
    member, nonmember = features
    tasks = audit_tasks(forget.y.numpy(), holdout.y.numpy(), per_class=False, n_splits=1, seed=0)
    _, (grad_member, _) = utility_and_gradient(member, nonmember, tasks, "logistic",
                                               feature_scale(member, nonmember, tasks))
    train_members = tasks[0].train[tasks[0].train < tasks[0].n_members]
    assert grad_member[train_members].abs().sum() > 0
    unused = np.setdiff1d(np.arange(len(member)), torch.cat([tasks[0].train, tasks[0].test]).numpy())
    assert grad_member[torch.as_tensor(unused, dtype=torch.long)].abs().sum() == 0


@pytest.mark.skipif(not cvxpylayers_available(),
                    reason='cvxpylayers is not installed (optional extra: pip install "unlearn[svm]")')
def test_torch_auditor_agrees_with_cvxpylayers(features, forget, holdout):
    member, nonmember = features
    # A small problem: one class's auditor (about 25 rows), one split.
    tasks = [task for task in audit_tasks(forget.y.numpy(), holdout.y.numpy(), per_class=True, n_splits=1,
                                          seed=0) if task.group == 3]
    scale = feature_scale(member, nonmember, tasks)
    torch_utility, torch_grad = utility_and_gradient(member, nonmember, tasks, "sqhinge", scale)

    # The same squared-hinge problem posed to cvxpylayers: same optimum, same gradient direction.
    cvx_utility, cvx_grad = utility_and_gradient(member, nonmember, tasks, "sqhinge", scale, solver="cvxpylayers")
    torch_flat = torch.cat([g.flatten() for g in torch_grad])
    cvx_flat = torch.cat([g.flatten() for g in cvx_grad])
    assert cvx_utility == pytest.approx(torch_utility, rel=1e-4)
    assert float(torch.nn.functional.cosine_similarity(torch_flat, cvx_flat, dim=0)) > 0.999

    # The paper's hinge SVM: a different loss, so only the gradient's direction is compared.
    _, svm_grad = utility_and_gradient(member, nonmember, tasks, "svm", scale)
    svm_flat = torch.cat([g.flatten() for g in svm_grad])
    assert float(torch.nn.functional.cosine_similarity(torch_flat, svm_flat, dim=0)) > 0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(6, 40), d=st.integers(1, 6),
       l2=st.floats(1e-3, 1.0), kind=st.sampled_from(["logistic", "sqhinge"]))
def test_solver_reaches_the_unique_optimum(seed, n, d, l2, kind):
    gen = torch.Generator().manual_seed(seed)
    t = (torch.arange(n) % 2).double()
    X = torch.cat([torch.randn(n, d, generator=gen, dtype=torch.float64) + 3 * t[:, None],
                   torch.ones(n, 1, dtype=torch.float64)], 1)  # separable often: the ridge must cope
    theta = solve_auditor(X, t, kind, l2, tol=1e-10)
    theta.requires_grad_(True)
    from unlearn.methods.sg_auditor import auditor_loss

    objective = auditor_loss(X @ theta, t, kind).mean() + 0.5 * l2 * theta.dot(theta)
    (grad,) = torch.autograd.grad(objective, theta)
    assert grad.abs().max() < 1e-8
    # Its value is the solver's: the implicit correction changes gradients, not values.
    assert torch.allclose(implicit_optimum(X.requires_grad_(True), t, kind, l2).detach(), theta.detach())
    # Batched with another problem and padded with junk rows of weight 0: the same optimum.
    junk = torch.randn(5, d + 1, generator=gen, dtype=torch.float64) * 100
    X2 = torch.stack([torch.cat([X.detach(), junk]), torch.cat([X.detach()[:, :], junk])[torch.randperm(n + 5)]])
    t2 = torch.stack([torch.cat([t, torch.ones(5, dtype=torch.float64)]), torch.zeros(n + 5, dtype=torch.float64)])
    w2 = torch.stack([torch.cat([torch.full((n,), 1.0 / n), torch.zeros(5)]), torch.full((n + 5,), 1.0 / (n + 5))])
    batched = solve_auditors(X2, t2, w2.double(), kind, l2, tol=1e-10)
    assert torch.allclose(batched[0], theta.detach(), atol=1e-8)


def test_audit_tasks_are_balanced_stratified_and_disjoint(forget, holdout):
    member_labels, nonmember_labels = forget.y.numpy(), holdout.y.numpy()
    tasks = audit_tasks(member_labels, nonmember_labels, per_class=True, n_splits=3, train_fraction=0.7, seed=0)
    labels = np.concatenate([member_labels, nonmember_labels])
    assert len(tasks) == 3 * len(np.unique(member_labels))
    for task in tasks:
        train, test = task.train.numpy(), task.test.numpy()
        assert not set(train) & set(test)
        rows = np.concatenate([train, test])
        assert (labels[rows] == task.group).all()  # a per-class auditor sees its class only
        assert (rows < task.n_members).sum() == (rows >= task.n_members).sum()  # balanced
        for part in (train, test):  # stratified: both sides hold members and non-members
            assert 0 < (part < task.n_members).sum() < len(part)
        assert abs(len(train) / len(rows) - 0.7) < 0.15
    single = audit_tasks(member_labels, nonmember_labels, per_class=False, n_splits=1, seed=0)
    for rows, weights in ((single[0].train, single[0].train_weights), (single[0].test, single[0].test_weights)):
        rows, weights = rows.numpy(), weights.numpy()
        member = rows < len(member_labels)
        # Class by class, as much member weight as non-member weight.
        by_class = [np.bincount(labels[rows[side]], weights[side], minlength=10) for side in (member, ~member)]
        np.testing.assert_allclose(by_class[0], by_class[1], atol=1e-12)
        assert weights.sum() == pytest.approx(1.0)


def test_audit_tasks_refuse_impossible_input():
    with pytest.raises(UnlearnInputError, match="2 forget samples and 2 held-out"):
        audit_tasks(np.array([0, 1]), np.array([2, 2, 2]), per_class=True)
    with pytest.raises(UnlearnInputError, match="train_fraction"):
        audit_tasks(np.array([0, 0]), np.array([0, 0]), per_class=True, train_fraction=1.5)


def test_attacker_step_lowers_the_auditors_utility(digits_original, forget, retain, holdout):
    """One step on α·U_a through the re-fitted auditor must lower U_a (first order: small step)."""
    sg = methods.get("sg", alpha=1.0, lr=1e-3, grouping="single")
    model = __import__("copy").deepcopy(digits_original)
    tasks = audit_tasks(forget.y.numpy(), holdout.y.numpy(), per_class=False, seed=0)
    member, nonmember = sg._features(model, forget, holdout, "cpu")
    scale = feature_scale(member, nonmember, tasks)
    before = sg._audit(model, forget, holdout, tasks, scale, "cpu").utility
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    sg._attack_step(model, forget, holdout, tasks, scale, optimizer, "cpu")
    after = sg._audit(model, forget, holdout, tasks, scale, "cpu").utility
    assert float(after) < float(before)


@pytest.mark.parametrize("selection, leak", [("two-sided", lambda mia: 50 + abs(mia - 50)), ("paper", lambda mia: mia),
                                             ("last", None)])
def test_sg_unlearns_and_reports(digits_original, forget, retain, holdout, selection, leak):
    before = {k: v.clone() for k, v in digits_original.state_dict().items()}
    sg = methods.get("sg", alpha=1.0, epochs=3, base="rl", grouping="single", selection=selection)
    new = sg.unlearn(digits_original, forget, retain, seed=0, holdout=holdout)
    assert all(torch.equal(before[k], v) for k, v in digits_original.state_dict().items())  # input untouched
    assert any(not torch.equal(before[k], v) for k, v in new.state_dict().items())
    stats = json.loads(json.dumps(sg.stats_))
    assert len(stats["history"]) == 3
    # max() keeps the first of equal scores, as SG does; "last" scores every epoch alike but keeps the last.
    best = (stats["history"][-1] if selection == "last"
            else max(stats["history"], key=lambda h: h["validation_accuracy"] - leak(h["mia_accuracy"])))
    assert stats["selected_epoch"] == best["epoch"]
    # The cosine schedule runs once over the epochs: strictly decreasing, never restarted.
    rates = [h["lr"] for h in stats["history"]]
    assert rates[0] == pytest.approx(0.01) and rates[0] > rates[1] > rates[2]
    # RL base: the forget set is no longer fitted perfectly, the rest of the model still works.
    from unlearn.models import accuracy

    assert accuracy(new, holdout) > 80


def test_sg_is_deterministic(digits_original, forget, retain, holdout):
    runs = [methods.get("sg", alpha=0.5, epochs=2, grouping="single").unlearn(
        digits_original, forget, retain, seed=3, holdout=holdout) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values()))


def test_sg_refuses_bad_input(digits_original, forget, retain, holdout):
    sg = methods.get("sg", epochs=1)
    with pytest.raises(UnlearnInputError, match="holdout"):
        sg.unlearn(digits_original, forget, retain)
    with pytest.raises(UnlearnInputError, match="retain"):
        sg.unlearn(digits_original, forget, None, holdout=holdout)
    for bad in ({"alpha": -1}, {"base": "ga"}, {"auditor": "tree"}, {"features": "probs"}, {"lr": 0},
                {"grouping": "none"}, {"epochs": 0}, {"epochs": "three"}, {"l2": 0}, {"train_fraction": 1.0},
                {"attack_lr": -1.0}, {"selection": "best"}):
        with pytest.raises(UnlearnInputError):
            methods.get("sg", **bad).unlearn(digits_original, forget, retain, holdout=holdout)
    with pytest.raises(UnlearnInputError, match="no hyperparameter"):
        methods.get("sg", gamma=1)


def test_cli_forget_with_sg_writes_its_history(tmp_path, digits, digits_split, digits_original, capsys):
    from unlearn import models
    from unlearn.cli import main

    model_file = models.save_model(digits_original, tmp_path / "original.safetensors")
    forget_csv = data.save_forget_csv(tmp_path / "forget.csv", digits_split.forget)
    out = tmp_path / "sg.safetensors"
    with pytest.raises(SystemExit) as info:
        main(["forget", "--model", str(model_file), "--forget", str(forget_csv), "--method", "sg",
              "--set", "alpha=0.5", "--set", "epochs=2", "--set", "grouping=single", "--out", str(out)])
    assert int(info.value.code or 0) == 0, capsys.readouterr()
    models.load_model(out, digits)
    stats = json.loads((tmp_path / "sg.safetensors.stats.json").read_text())
    assert [h["epoch"] for h in stats["history"]] == [1, 2] and stats["per_class_auditors"] is False
    with pytest.raises(SystemExit) as info:  # SG needs D_R: a one-line refusal, exit code 2
        main(["forget", "--model", str(model_file), "--forget", str(forget_csv), "--method", "sg", "--no-retain",
              "--out", str(tmp_path / "x.safetensors")])
    assert info.value.code == 2 and "retain" in capsys.readouterr().err


def test_attacker_step_scores_batchnorm_models_in_eval_mode(digits, forget, holdout):
    """The auditor's batches must not move BatchNorm's running statistics (a defect of the public code)."""
    from unlearn.models import create

    torch.manual_seed(0)
    model = create("cnn", digits, width=8)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    assert any("running_mean" in k for k in buffers)
    sg = methods.get("sg", alpha=1.0, grouping="single")
    tasks = audit_tasks(forget.y.numpy(), holdout.y.numpy(), per_class=False, seed=0)
    scale = feature_scale(*sg._features(model, forget, holdout, "cpu"), tasks)
    weights = {k: v.clone() for k, v in model.named_parameters()}
    sg._attack_step(model, forget, holdout, tasks, scale, torch.optim.SGD(model.parameters(), lr=0.01), "cpu")
    assert all(torch.equal(buffers[k], v) for k, v in model.named_buffers())
    assert any(not torch.equal(weights[k], v) for k, v in model.named_parameters())


def test_class_forgetting_uses_one_auditor_on_the_forgotten_class(digits, digits_original, holdout):
    split = data.class_forget(digits.train.y.numpy(), [3])
    forget, retain = digits.train.subset(split.forget), digits.train.subset(split.retain)
    sg = methods.get("sg", alpha=1.0, epochs=2)
    sg.unlearn(digits_original, forget, retain, seed=0, holdout=holdout)
    assert sg.stats_["per_class_auditors"] is False and sg.stats_["n_auditors"] == sg.n_splits
    tasks = audit_tasks(forget.y.numpy(), holdout.y.numpy(), per_class=False, seed=0)
    rows = torch.cat([tasks[0].train, tasks[0].test])
    nonmember_rows = rows[rows >= len(forget)] - len(forget)
    assert (holdout.y[nonmember_rows] == 3).all()  # non-members of the forgotten class only


@pytest.mark.skipif(not cvxpylayers_available(),
                    reason='cvxpylayers is not installed (optional extra: pip install "unlearn[svm]")')
def test_sg_runs_with_the_papers_svm_auditor(digits_original, forget, retain, holdout):
    sg = methods.get("sg", alpha=1.0, epochs=1, auditor="svm", grouping="single", n_splits=1)
    new = sg.unlearn(digits_original, forget, retain, seed=0, holdout=holdout)
    assert sg.stats_["history"][0]["utility"] < 0  # minus a hinge loss
    assert any(not torch.equal(a, b) for a, b in zip(new.state_dict().values(), digits_original.state_dict().values()))


def test_compacted_tasks_audit_the_same_rows(features, forget, holdout):
    from unlearn.methods.sg_auditor import compact_tasks

    member, nonmember = features
    tasks = audit_tasks(forget.y.numpy(), holdout.y.numpy(), per_class=True, seed=4)
    compacted, used = compact_tasks(tasks)
    assert len(used) < len(holdout) and len(np.unique(used)) == len(used)
    full = audit(member, nonmember, tasks, kind="logistic")
    small = audit(member, nonmember[torch.as_tensor(used)], compacted, kind="logistic")
    assert float(small.utility) == pytest.approx(float(full.utility), rel=1e-12)
    assert small.accuracy == full.accuracy


@pytest.fixture(scope="module")
def class_three(digits):
    split = data.class_forget(digits.train.y.numpy(), [3])
    return digits.train.subset(split.forget), digits.train.subset(split.retain)


def test_class_forgetting_selects_on_retained_class_accuracy(digits_original, holdout, class_three):
    forget, retain = class_three
    sg = methods.get("sg", alpha=1.0, epochs=2, selection="last")
    new = sg.unlearn(digits_original, forget, retain, seed=0, holdout=holdout)
    retained = holdout.subset(np.flatnonzero(holdout.y.numpy() != 3))
    assert sg.stats_["history"][-1]["validation_accuracy"] == pytest.approx(accuracy(new, retained))
    assert sg.stats_["forgotten_classes"] == [3] and sg.stats_["validation_samples"] == len(retained)
    # Counting the forgotten class would give another figure: its samples are mostly misclassified now.
    assert accuracy(new, holdout) != pytest.approx(accuracy(new, retained))


def test_auditor_splits_are_redrawn_and_selection_uses_fresh_auditors(digits_original, forget, retain, holdout):
    sg = methods.get("sg", alpha=1.0, epochs=3, selection="last", grouping="single")
    new = sg.unlearn(digits_original, forget, retain, seed=0, holdout=holdout)
    seeds = [h["auditor_seeds"] for h in sg.stats_["history"]]
    draws = [seed[kind] for seed in seeds for kind in ("attack", "selection")]
    assert len(set(draws)) == len(draws)  # every epoch's attack and selection draw its own splits

    def train_rows(draw_seed):
        tasks = audit_tasks(forget.y.numpy(), holdout.y.numpy(), per_class=False, seed=draw_seed)
        return {tuple(task.train.tolist()) for task in tasks}

    assert train_rows(seeds[0]["attack"]) != train_rows(seeds[1]["attack"])
    assert train_rows(seeds[-1]["attack"]) != train_rows(seeds[-1]["selection"])
    # The selection's MIA figure is that of auditors fitted on the fresh draw.
    fresh = audit_tasks(forget.y.numpy(), holdout.y.numpy(), per_class=False, seed=seeds[-1]["selection"])
    member, nonmember = sg._features(new, forget, holdout, "cpu")
    first = audit_tasks(forget.y.numpy(), holdout.y.numpy(), per_class=False, seed=seeds[0]["attack"])
    scale = feature_scale(*sg._features(digits_original, forget, holdout, "cpu"), first)  # fixed from θ_o
    mia = audit(member, nonmember, fresh, kind="logistic", scale=scale).accuracy
    assert sg.stats_["history"][-1]["mia_accuracy"] == pytest.approx(mia)
    stale = audit(member, nonmember, audit_tasks(forget.y.numpy(), holdout.y.numpy(), per_class=False,
                                                  seed=seeds[-1]["attack"]), kind="logistic", scale=scale).accuracy
    assert mia != stale


def test_class_forgetting_auditor_uses_all_of_the_forget_set(holdout, class_three):
    forget, _ = class_three
    tasks = audit_tasks(forget.y.numpy(), holdout.y.numpy(), per_class=False, n_splits=3, seed=0)
    for task in tasks:
        rows = torch.cat([task.train, task.test])
        assert set(rows[rows < len(forget)].tolist()) == set(range(len(forget)))  # every member, none cut
        nonmember_rows = rows[rows >= len(forget)] - len(forget)
        assert len(nonmember_rows) == int((holdout.y == 3).sum()) < len(forget)
        for part, weights in ((task.train, task.train_weights), (task.test, task.test_weights)):
            members = part < len(forget)
            assert float(weights[members].sum()) == pytest.approx(0.5)
            assert float(weights[~members].sum()) == pytest.approx(0.5)


def test_module_names_the_papers_authors():
    import unlearn.methods.sg as sg_module

    assert "Di, Yu, Vorobeychik, Liu" in sg_module.__doc__
