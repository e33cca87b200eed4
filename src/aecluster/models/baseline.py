"""The course's sample autoencoder, exactly as the homework gives it."""

from __future__ import annotations

import torch
from torch import nn

from aecluster.models import register
from aecluster.models.base import AEOutput, AutoEncoder
from aecluster.schema import Table


@register("baseline")
class BaselineAE(AutoEncoder):
    latent_dim = 256 * 4 * 4
    params = Table({})

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=1, padding=1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, stride=1, padding=1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(128, 256, 3, stride=1, padding=1), nn.ReLU(True), nn.MaxPool2d(2),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 5, stride=1), nn.ReLU(True),
            nn.ConvTranspose2d(128, 64, 9, stride=1), nn.ReLU(True),
            nn.ConvTranspose2d(64, 3, 17, stride=1), nn.Tanh(),
        )  # fmt: skip

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).flatten(1)

    def forward(self, x: torch.Tensor) -> AEOutput:
        h = self.encoder(x)
        return AEOutput(recon=self.decoder(h), latent=h.flatten(1))
