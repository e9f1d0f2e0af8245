"""Certified removal on digits: the Newton step, its bound against an exact retrain, the budget."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch
import torch.nn.functional as F

from unlearn import methods, models
from unlearn.errors import UnlearnInputError
from unlearn.methods import certified

LAM, SIGMA = 1e-2, 1.0


@pytest.fixture(scope="module")
def linear_model(digits, bank):
    return bank.get(digits, "mlp", None, seed=0, arch_args={"hidden": []}, progress=False)


@pytest.fixture(scope="module")
def problem(digits, linear_model):
    """Unit-norm features of the linear model, ±1 targets, a perturbation b and the fitted W*."""
    _, features = certified.head_features(linear_model, digits.train, "cpu")
    X = features / features.norm(dim=1).max()
    Y = certified.one_vs_rest(digits.train.y, 10)
    b = certified.perturbation((X.shape[1], 10), SIGMA, torch.Generator().manual_seed(0))
    W, residual = certified.fit_perturbed(X, Y, LAM, b)
    return X, Y, b, W, residual


def exact_minimiser(X, Y, b, lam):
    """argmin of Σ ℓ + λn/2‖w‖² + bᵀw per class by scipy's L-BFGS-B, independent of the module's solver."""
    Xn, out = X.numpy(), []
    for k in range(Y.shape[1]):
        y, bk = Y[:, k].numpy(), b[:, k].numpy()

        def objective(w, y=y, bk=bk):
            margins = y * (Xn @ w)
            loss = np.logaddexp(0, -margins).sum() + lam * len(Xn) / 2 * w @ w + bk @ w
            grad = Xn.T @ (-y / (1 + np.exp(margins))) + lam * len(Xn) * w + bk
            return loss, grad

        res = scipy.optimize.minimize(objective, np.zeros(Xn.shape[1]), jac=True, method="L-BFGS-B",
                                      options={"gtol": 1e-12, "ftol": 0, "maxiter": 10_000})
        out.append(torch.from_numpy(res.x))
    return torch.stack(out, dim=1)


def test_the_newton_step_is_the_one_with_the_hessian_of_the_remaining_loss(problem):
    X, Y, b, W, _ = problem
    keep = torch.ones(len(X), dtype=torch.bool)
    keep[:5] = False
    W_new, _ = certified.newton_removal(W, X[keep], Y[keep], X[~keep], Y[~keep], LAM)
    for k in range(3):  # autograd's Hessian and gradient of L_b(·; D') for a few classes

        def remaining_loss(w, k=k):
            return (F.softplus(-Y[keep, k] * (X[keep] @ w)).sum() + LAM * keep.sum() / 2 * w @ w
                    + b[:, k] @ w)

        hessian = torch.autograd.functional.hessian(remaining_loss, W[:, k])
        grad = torch.autograd.functional.jacobian(remaining_loss, W[:, k])
        step = -torch.linalg.solve(hessian, grad)
        assert step.norm() > 1e-3  # a step worth checking; W* is only as exact as its fit (~1e-7 here)
        torch.testing.assert_close(W_new[:, k], W[:, k] + step, rtol=0, atol=1e-6)


@pytest.mark.parametrize("removed", [1, 5, 20])
def test_newton_weights_are_within_the_stated_bound_of_the_exact_retrain(problem, removed):
    X, Y, b, W, fit_residual = problem
    keep = torch.ones(len(X), dtype=torch.bool)
    keep[torch.randperm(len(X), generator=torch.Generator().manual_seed(removed))[:removed]] = False
    W_new, bounds = certified.newton_removal(W, X[keep], Y[keep], X[~keep], Y[~keep], LAM)
    residual_bound = bounds + fit_residual
    # The gradient residual on D' (with the same b) is within the bound, class by class ...
    residual = certified.gradient(W_new, X[keep], Y[keep], LAM, b).norm(dim=0)
    assert (residual <= residual_bound).all()
    # ... and so, by λn'-strong convexity, is the distance to the exact minimiser on D'.
    W_exact = exact_minimiser(X[keep], Y[keep], b, LAM)
    exact_residual = certified.gradient(W_exact, X[keep], Y[keep], LAM, b).norm(dim=0)
    assert exact_residual.max() < 1e-5
    distance = (W_new - W_exact).norm(dim=0)  # the solver's own residual widens the bound a little
    assert (distance <= (residual_bound + exact_residual) / (LAM * keep.sum())).all()
    # Not vacuous: the Newton step lands far closer to the retrain than staying at W* does.
    assert distance.sum() < 0.05 * (W - W_exact).norm(dim=0).sum()


def test_the_bound_for_a_fixed_removal_falls_like_one_over_n(linear_model, digits):
    _, features = certified.head_features(linear_model, digits.train, "cpu")
    X_all = features / features.norm(dim=1).max()
    Y_all = certified.one_vs_rest(digits.train.y, 10)
    sizes, bounds = [150, 300, 600, 1200], []
    for n in sizes:  # the same 5 removed samples, ever more kept ones
        X, Y = X_all[:n], Y_all[:n]
        b = certified.perturbation((X.shape[1], 10), SIGMA, torch.Generator().manual_seed(0))
        W, _ = certified.fit_perturbed(X, Y, LAM, b)
        _, bound = certified.newton_removal(W, X[5:], Y[5:], X[:5], Y[:5], LAM)
        bounds.append(float(bound.sum()))
    assert all(a > b for a, b in zip(bounds, bounds[1:])), bounds
    slope = np.polyfit(np.log(sizes), np.log(bounds), 1)[0]
    assert -1.6 < slope < -0.6, (slope, bounds)  # the paper's O(1/n) for a fixed removal


def test_successive_removals_spend_the_budget_and_retrain_when_it_would_be_exceeded(digits, linear_model, tmp_path):
    model = certified.certified_fit(linear_model, digits.train, sigma=SIGMA, lam=LAM, seed=1)
    budget = certified.removal_budget(1.0, 1e-4, SIGMA)
    method = methods.get("certified", sigma=SIGMA, lam=LAM)
    order = torch.randperm(len(digits.train), generator=torch.Generator().manual_seed(0)).numpy()
    spent, fired, remaining = model.spec["training"]["certified_removal"]["bound"], [], order
    for request in range(4):
        gone, remaining = remaining[:5], remaining[5:]
        # Through a saved file, as a deployed model would be: the record travels with the model.
        models.save_model(model, tmp_path / "m.safetensors")
        model = models.load_model(tmp_path / "m.safetensors")
        model = method.unlearn(model, digits.train.subset(np.sort(gone)), digits.train.subset(np.sort(remaining)),
                               seed=request)
        stats = method.stats_
        assert stats["newton_bound"] == spent + stats["bound_added"] + stats["newton_rounding"]
        assert stats["retrained"] == (stats["newton_bound"] > budget)
        assert stats["bound"] <= budget and stats["certified"]
        fired.append(stats["retrained"])
        spent = stats["bound"]
    assert any(fired) and not all(fired), fired  # both branches ran
    record = model.spec["training"]["certified_removal"]
    assert record["removals"] == 4 and record["retrains"] == sum(fired) and record["n_fitted"] == len(remaining)
    assert models.accuracy(model, digits.test) > 80


def test_a_tiny_budget_retrains_at_once_and_the_network_guarantee_is_the_last_layer(digits, digits_original,
                                                                                    digits_split):
    forget, retain = digits.train.subset(digits_split.forget), digits.train.subset(digits_split.retain)
    method = methods.get("certified", sigma=1e-6, lam=LAM)
    new = method.unlearn(digits_original, forget, retain)
    assert method.stats_["fitted_at_start"] and method.stats_["retrained"]
    assert method.stats_["guarantee"] == "last layer only"
    for (name, a), b in zip(new.named_parameters(), digits_original.parameters()):
        assert torch.equal(a, b) == (not name.startswith("net.5")), name  # only the head changed
    assert models.accuracy(new, digits.test) > 90


def test_a_model_is_refused_with_other_hyperparameters_or_other_data(digits, linear_model, digits_split):
    model = certified.certified_fit(linear_model, digits.train, sigma=SIGMA, lam=LAM)
    forget, retain = digits.train.subset(digits_split.forget), digits.train.subset(digits_split.retain)
    with pytest.raises(UnlearnInputError, match="lam"):
        methods.get("certified", sigma=SIGMA, lam=0.1).unlearn(model, forget, retain)
    with pytest.raises(UnlearnInputError, match="samples"):
        methods.get("certified", sigma=SIGMA, lam=LAM).unlearn(model, forget, retain.subset(range(100)))


@pytest.mark.parametrize("bad", [{"epsilon": 0}, {"delta": 2.0}, {"sigma": "ten"}, {"lam": -1.0}])
def test_certified_refuses_unusable_hyperparameters_by_name(digits, linear_model, digits_split, bad):
    forget, retain = digits.train.subset(digits_split.forget), digits.train.subset(digits_split.retain)
    with pytest.raises(UnlearnInputError, match=list(bad)[0]):
        methods.get("certified", **bad).unlearn(linear_model, forget, retain)


def test_a_retrain_draws_a_new_perturbation_with_a_recorded_seed(digits, linear_model):
    """Algorithm 2's retrain needs a fresh b, even when every call is given the same seed."""
    model = certified.certified_fit(linear_model, digits.train, sigma=SIGMA, lam=LAM, seed=0)
    [first] = model.spec["training"]["certified_removal"]["noise_seeds"]
    keep = np.arange(200, len(digits.train))  # 200 removed at once: far over the budget, so a retrain
    method = methods.get("certified", sigma=SIGMA, lam=LAM)
    new = method.unlearn(model, digits.train.subset(np.arange(200)), digits.train.subset(keep), seed=0)
    assert method.stats_["retrained"]
    seeds = new.spec["training"]["certified_removal"]["noise_seeds"]
    assert seeds[0] == first and len(seeds) == 2 and seeds[1] != first
    head, features = certified.head_features(new, digits.train.subset(keep), "cpu")
    X = features / new.spec["training"]["certified_removal"]["feature_scale"]
    Y = certified.one_vs_rest(digits.train.subset(keep).y, 10)
    stored = certified.read_head(head, new.spec["training"]["certified_removal"]["feature_scale"])
    for seed, same in ((seeds[1], True), (first, False)):  # the recorded draw, not the original fit's b
        b = certified.perturbation(stored.shape, SIGMA, torch.Generator().manual_seed(seed))
        W, _ = certified.fit_perturbed(X, Y, LAM, b)
        assert torch.allclose(stored, W, atol=1e-5) == same


def test_the_retrain_decision_counts_the_rounding_of_the_stored_head(digits, linear_model, digits_split):
    """A budget between the Newton bound without and with its float32 rounding must retrain."""
    forget, retain = digits.train.subset(digits_split.forget), digits.train.subset(digits_split.retain)
    probe = methods.get("certified", epsilon=1e6, sigma=SIGMA, lam=LAM)
    probe.unlearn(linear_model, forget, retain, seed=3)
    stats = probe.stats_
    assert not stats["retrained"] and stats["newton_rounding"] > 0
    budget = stats["newton_bound"] - stats["newton_rounding"] / 2  # the bound fits only without rounding
    epsilon = budget * np.sqrt(2 * np.log(1.5 / 1e-4)) / SIGMA
    method = methods.get("certified", epsilon=epsilon, sigma=SIGMA, lam=LAM)
    method.unlearn(linear_model, forget, retain, seed=3)
    assert method.stats_["newton_bound"] == stats["newton_bound"]
    assert method.stats_["retrained"]  # neither "not retrained" nor "not certified" may be left
