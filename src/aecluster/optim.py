"""Optimizers and learning-rate schedules, by the names a recipe gives them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, c: torch.optim.Adam(params, lr=c["lr"], weight_decay=c["weight_decay"]),
    # weight decay decoupled from the gradient's scaling (Loshchilov & Hutter): each step shrinks
    # the weights by lr * weight_decay, so its useful values are far larger than Adam's
    "adamw": lambda params, c: torch.optim.AdamW(
        params, lr=c["lr"], weight_decay=c["weight_decay"]
    ),
    "sgd": lambda params, c: torch.optim.SGD(
        params, lr=c["lr"], momentum=c["momentum"], weight_decay=c["weight_decay"]
    ),
}

# learning-rate factor for epoch e (0-based) of E, set at the start of each epoch
LR_SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "constant": lambda e, E: 1.0,
    "cosine": lambda e, E: 0.5 * (1 + math.cos(math.pi * e / E)),
}


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: dict) -> torch.optim.Optimizer:
    """The recipe's `train.optimizer` over `params` (the recipe schema checked its name)."""
    return OPTIMIZERS[cfg["optimizer"]](params, cfg)
