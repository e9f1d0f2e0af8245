"""Fisher forgetting on digits: the noise has the variance the closed-form Fisher of a linear model gives."""

from __future__ import annotations

import pytest
import torch

from unlearn import data, methods, models
from unlearn.errors import UnlearnInputError
from unlearn.methods.fisher import fisher_diagonal


@pytest.fixture(scope="module")
def linear_model(digits, bank):
    return bank.get(digits, "mlp", None, seed=0, arch_args={"hidden": []}, progress=False)


@pytest.fixture(scope="module")
def sets(digits, digits_split):
    return digits.train.subset(digits_split.forget), digits.train.subset(digits_split.retain)


def closed_form_fisher(model, retain):
    """Softmax regression: F[W_cj] = mean_i p_ic (1 - p_ic) z_ij², F[b_c] = mean_i p_ic (1 - p_ic),
    where z is the normalised, flattened input the linear layer sees."""
    z = ((data.as_float(retain.x) - model.mean) / model.std).flatten(1)
    p = models.logits(model, retain).softmax(1)
    curvature = p * (1 - p)
    return curvature.T @ z**2 / len(retain), curvature.mean(0)


def test_the_fisher_of_a_linear_model_is_the_closed_form(linear_model, sets):
    _, retain = sets
    fisher = fisher_diagonal(linear_model, retain, torch.device("cpu"))
    weight, bias = closed_form_fisher(linear_model, retain)
    torch.testing.assert_close(fisher["net.1.weight"], weight, rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(fisher["net.1.bias"], bias, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("arch, arch_args", [("mlp", {"hidden": [32, 16]}), ("cnn", {"width": 4, "hidden": 16})])
def test_the_linear_layer_shortcut_gives_the_per_sample_gradient_fisher(digits, arch, arch_args):
    # ReLU(inplace=True) follows every hidden Linear here: the shortcut must differentiate at the
    # layer's output before the activation overwrites it.
    torch.manual_seed(0)
    model = models.create(arch, digits, **arch_args)
    subset = digits.train.subset(range(24))
    fast = fisher_diagonal(model, subset, torch.device("cpu"))
    generic = fisher_diagonal(model, subset, torch.device("cpu"), linear_shortcut=False)
    for name, value in generic.items():
        torch.testing.assert_close(fast[name], value, rtol=1e-4, atol=1e-9)
    # Plain numbers, no graph: when the shortcut's weights entered the vmapped pass as parameters,
    # every chunk's per-sample gradients hung on one autograd graph through these sums, and memory
    # grew with the data (about 18 GB on cifar10-cpu's retain set).
    assert not any(value.requires_grad for value in fast.values())


def test_the_noise_is_gaussian_with_the_notebook_variance(linear_model, sets):
    forget, retain = sets
    alpha = 1e-6
    new = methods.get("fisher", alpha=alpha).unlearn(linear_model, forget, retain, seed=3)
    weight, bias = closed_form_fisher(linear_model, retain)
    # The head of a linear model: variance α·min(1/(F + 1e-8), 100), row mean for the weight, × 10.
    var_w = (alpha * (1 / (weight + 1e-8)).clamp(max=100)).mean(1, keepdim=True) * 10
    var_b = alpha * (1 / (bias + 1e-8)).clamp(max=100) * 10
    z = torch.cat([((new.net[1].weight - linear_model.net[1].weight) / var_w.sqrt()).flatten(),
                   (new.net[1].bias - linear_model.net[1].bias) / var_b.sqrt()]).detach()
    assert len(z) == 650
    assert abs(float(z.mean())) < 0.15
    assert 0.9 < float(z.std()) < 1.1
    # A wrong variance by a factor of two would show: the standardised noise is N(0, 1).
    assert float((z.abs() < 1).float().mean()) == pytest.approx(0.683, abs=0.05)
    # The variance is pooled per row: weights the Fisher pins down (own variance under 0.8 of the
    # row's mean: 84 of them, 0.62 of it on average) get as much noise as the rest. Unpooled
    # variances would give them a standard deviation near √0.62 = 0.79; eight draws of 84 tell.
    own = alpha * (1 / (weight + 1e-8)).clamp(max=100) * 10
    pinned = own < 0.8 * var_w
    assert int(pinned.sum()) >= 50
    draws = [((methods.get("fisher", alpha=alpha).unlearn(linear_model, forget, retain, seed=s).net[1].weight
               - linear_model.net[1].weight) / var_w.sqrt())[pinned].detach() for s in range(8)]
    assert 0.9 < float(torch.cat(draws).std()) < 1.1


def test_alpha_zero_returns_the_original_weights_and_more_noise_costs_more_accuracy(digits, linear_model, sets):
    forget, retain = sets
    same = methods.get("fisher", alpha=0.0).unlearn(linear_model, forget, retain)
    for a, b in zip(same.parameters(), linear_model.parameters()):
        assert torch.equal(a, b)
    quiet = methods.get("fisher", alpha=1e-7).unlearn(linear_model, forget, retain, seed=1)
    loud = methods.get("fisher", alpha=1e-3).unlearn(linear_model, forget, retain, seed=1)
    assert models.accuracy(quiet, digits.test) > models.accuracy(linear_model, digits.test) - 2
    assert models.accuracy(loud, digits.test) < models.accuracy(quiet, digits.test) - 10


@pytest.mark.parametrize("bad", [-1e-6, "tiny", float("nan")])
def test_fisher_refuses_an_unusable_alpha_by_name(linear_model, sets, bad):
    forget, retain = sets
    with pytest.raises(UnlearnInputError, match="alpha"):
        methods.get("fisher", alpha=bad).unlearn(linear_model, forget, retain)
