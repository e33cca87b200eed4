"""What every autoencoder returns and exposes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from aecluster.data import IMAGE_SIZE
from aecluster.schema import Table


@dataclass
class AEOutput:
    recon: torch.Tensor
    latent: torch.Tensor
    kl: torch.Tensor | None = None


class AutoEncoder(nn.Module):
    latent_dim: int
    any_size: bool = False  # whether `encode` takes images of any size (multi-crop needs it)
    params: ClassVar[Table]  # the constructor's parameters, as a recipe may set them

    def reconstructs(self, side: int) -> bool:
        """Whether the model encodes and reconstructs side x side images (training views)."""
        return side == IMAGE_SIZE

    def view_sides(self) -> str:
        """The sides `reconstructs` accepts, in words (for error messages)."""
        return f"only {IMAGE_SIZE}"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Flat latent code (B, latent_dim); for a VAE, the posterior mean."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> AEOutput:
        raise NotImplementedError

    def forward_share(self, x: torch.Tensor, reconstructed: int) -> tuple[AEOutput, torch.Tensor]:
        """The output for the first `reconstructed` images and the latent codes of all of
        `x`: the decoder costs about as much as the encoder, so a loss that needs every code but
        not every reconstruction decodes only a share."""
        out = self(x[:reconstructed])
        if reconstructed >= len(x):
            return out, out.latent
        return out, torch.cat([out.latent, self.encode(x[reconstructed:])])
