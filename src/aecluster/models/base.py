"""What every autoencoder returns and exposes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AEOutput:
    recon: torch.Tensor
    latent: torch.Tensor
    kl: torch.Tensor | None = None


class AutoEncoder(nn.Module):
    latent_dim: int

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Flat latent code (B, latent_dim); for a VAE, the posterior mean."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> AEOutput:
        raise NotImplementedError
