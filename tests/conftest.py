"""Shared fixtures: small worlds built once per test session."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def small_world():
    from mmkit.data import World

    return World(n=120, seed=3)


@pytest.fixture(scope="session")
def clean_world():
    """No pixel or audio noise: attributes can be read back exactly."""
    from mmkit.data import World

    return World(n=60, seed=5, noise=0.0, max_objects=1, sign_prob=0.0)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: threads only add overhead on a shared 2-core machine (use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

