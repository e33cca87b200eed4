"""Heads and losses that can be added to the reconstruction objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """SimCLR's MLP head: latent -> hidden -> out, used only by the contrastive loss."""

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(True),
            nn.Linear(hidden_dim, out_dim),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class RotationHead(nn.Module):
    """A linear head on the latent that predicts which of 0/90/180/270 degrees was applied."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, 4)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(z)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalized temperature-scaled cross entropy over a batch of positive pairs."""
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T).float() / temperature
    sim.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(sim.device)
    return F.cross_entropy(sim, targets)
