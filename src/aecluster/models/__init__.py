"""Autoencoder architectures behind a registry: one small file per architecture.

Every model maps images (B, 3, 32, 32) in [-1, 1] to an `AEOutput` and has `encode(x)`, the flat
latent code used for clustering, and `latent_dim`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from aecluster.errors import InputError
from aecluster.models.base import AEOutput, AutoEncoder

MODELS: dict[str, type[AutoEncoder]] = {}


def register(name: str) -> Callable[[type[AutoEncoder]], type[AutoEncoder]]:
    def add(cls: type[AutoEncoder]) -> type[AutoEncoder]:
        MODELS[name] = cls
        return cls

    return add


def build_model(name: str, **params: Any) -> AutoEncoder:
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    try:
        return MODELS[name](**params)
    except TypeError as e:
        raise InputError(f"model {name!r}: bad parameters {params} ({e})") from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


from aecluster.models import baseline, conv  # noqa: E402, F401  (fill the registry)

__all__ = ["AEOutput", "AutoEncoder", "MODELS", "build_model", "count_parameters", "register"]
