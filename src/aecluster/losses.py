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


def nt_xent(*views: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalized temperature-scaled cross entropy, for any number of views.

    `views` are V (B, d) projections of the same B images. Each of the V*B rows is an anchor
    whose positives are the other V-1 views of its image and whose negatives are every other
    row; the loss is the mean over anchors and positives of -log softmax (SupCon's L_out with
    one class per image). With two views it is SimCLR's loss.
    """
    v, n = len(views), len(views[0])
    z = F.normalize(torch.cat(views), dim=1)
    sim = (z @ z.T).float() / temperature
    self_mask = torch.eye(v * n, dtype=torch.bool, device=sim.device)
    log_prob = sim.masked_fill(self_mask, float("-inf")).log_softmax(1)
    image = torch.arange(n, device=sim.device).repeat(v)
    positive = (image[:, None] == image[None, :]) & ~self_mask
    return -log_prob[positive].view(v * n, v - 1).mean()


def reconstructed(loss: dict, batch: int) -> int:
    """How many images of a batch the decoder reconstructs: `loss.reconstruct_share` of them,
    at least 2 (BatchNorm needs 2)."""
    return min(batch, max(2, round(loss["reconstruct_share"] * batch)))
