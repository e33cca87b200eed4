"""Autoencoder architectures behind a registry: one small file per architecture.

Every model maps images (B, 3, 32, 32) in [-1, 1] to an `AEOutput` and has `encode(x)`, the flat
latent code used for clustering, and `latent_dim`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from aecluster.errors import InputError
from aecluster.models.base import AEOutput, AutoEncoder
from aecluster.schema import check_params

MODELS: dict[str, type[AutoEncoder]] = {}


def register(name: str) -> Callable[[type[AutoEncoder]], type[AutoEncoder]]:
    def add(cls: type[AutoEncoder]) -> type[AutoEncoder]:
        MODELS[name] = cls
        return cls

    return add


# refuse before allocating: a model this large is a typo, not a recipe (the course AE has 1.9M)
MAX_PARAMETERS = 50_000_000


def build_model(name: str, **params: Any) -> AutoEncoder:
    """The registered model `name`, after checking its parameters and its size."""
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    check_params(MODELS[name], params, f"model.params[{name}]")
    with torch.device("meta"):
        size = count_parameters(MODELS[name](**params))
    if size > MAX_PARAMETERS:
        raise InputError(
            f"model {name!r} with {params} would have {size:,} parameters; "
            f"the limit is {MAX_PARAMETERS:,}"
        )
    return MODELS[name](**params)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


from aecluster.models import baseline, conv  # noqa: E402, F401  (fill the registry)

__all__ = ["AEOutput", "AutoEncoder", "MODELS", "build_model", "count_parameters", "register"]
