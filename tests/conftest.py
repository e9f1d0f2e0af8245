"""Shared fixtures: real data (mnist1d, digits, the CIFAR-10 copy when present), a private model bank."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Two xdist workers on two cores: one torch thread each avoids oversubscription.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

CIFAR_TARBALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg.tar.gz"


@pytest.fixture(scope="session")
def tmp_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("unlearn-home")


@pytest.fixture(autouse=True)
def _private_caches(tmp_home, monkeypatch):
    # Tests never touch the user's bank or cache; the session shares one so models train once.
    monkeypatch.setenv("UNLEARN_BANK", os.environ.get("UNLEARN_BANK", str(tmp_home / "bank")))
    monkeypatch.setenv("UNLEARN_CACHE", os.environ.get("UNLEARN_CACHE", str(tmp_home / "cache")))


@pytest.fixture(scope="session")
def digits():
    from unlearn import data

    return data.load("digits")


@pytest.fixture(scope="session")
def digits_split(digits):
    from unlearn import data

    return data.random_forget(len(digits.train), fraction=0.1, seed=0)


@pytest.fixture(scope="session")
def bank(tmp_home):
    from unlearn.bank import ModelBank

    return ModelBank(os.environ.get("UNLEARN_BANK", tmp_home / "bank"))


@pytest.fixture(scope="session")
def digits_original(digits, bank):
    return bank.get(digits, "mlp", None, seed=0, progress=False)


@pytest.fixture(scope="session")
def digits_retrained(digits, digits_split, bank):
    return bank.get(digits, "mlp", digits_split.retain, seed=0, progress=False)


@pytest.fixture(scope="session")
def mnist1d():
    """The embedded default: MNIST-1D, on which an MLP fits the training set and leaks membership."""
    from unlearn import data

    return data.load("mnist1d")


@pytest.fixture(scope="session")
def mnist1d_split(mnist1d):
    from unlearn import data

    return data.random_forget(len(mnist1d.train), fraction=0.1, seed=0)


@pytest.fixture(scope="session")
def mnist1d_original(mnist1d, bank):
    return bank.get(mnist1d, "mlp", None, seed=0, progress=False)


@pytest.fixture(scope="session")
def mnist1d_retrained(mnist1d, mnist1d_split, bank):
    return bank.get(mnist1d, "mlp", mnist1d_split.retain, seed=0, progress=False)


@pytest.fixture(scope="session")
def cifar10_path() -> Path:
    path = Path(os.environ.get("UNLEARN_CIFAR10", CIFAR_TARBALL))
    if not path.exists():
        pytest.skip(f"CIFAR-10 copy not found at {path} (set UNLEARN_CIFAR10 to run this test)")
    return path


@pytest.fixture(scope="session")
def cifar10(cifar10_path):
    from unlearn import data

    return data.load("cifar10", root=cifar10_path)
