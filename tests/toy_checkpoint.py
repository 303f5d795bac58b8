"""A tiny trainable model registered for the checkpoint tests (``MMKIT_MODEL_MODULES``)."""
from __future__ import annotations

import torch

from mmkit.checkpoints import CheckpointSpec, Trained

CALLS = {"train": 0}


def build(config: dict) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, config["hidden"]), torch.nn.ReLU(),
                               torch.nn.Linear(config["hidden"], 1))


def train(config: dict, progress: bool) -> Trained:
    CALLS["train"] += 1
    g = torch.Generator().manual_seed(123)
    x = torch.randn(256, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])
    model = build(config)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(config["steps"]):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return Trained(model, {"first_loss": losses[0], "last_loss": losses[-1]},
                   {"synthetic": {"n": 256, "seed": 123}, "steps": config["steps"]})


CHECKPOINTS = {"toy": CheckpointSpec("toy", build, train, {"hidden": 8, "steps": 40},
                                     "a 4-8-1 regression for the tests", seconds=1)}
