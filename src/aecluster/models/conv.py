"""A configurable convolutional autoencoder covering the reports' improvements as options.

- `widths` sets depth (one stage per entry, each after the first halving the resolution);
- `batchnorm`, `residual` blocks (in the decoder too unless `decoder_residual` is false),
  `downsample` by max-pooling or strided convolution, `upsample` by transposed convolution or
  PixelShuffle;
- `bottleneck`: a fully connected latent of that size; `variational`: a VAE on that latent;
- `pool_latent`: use the global average of the last feature map as the latent code.
"""

from __future__ import annotations

import torch
from torch import nn

from aecluster.data import IMAGE_SIZE
from aecluster.models import register
from aecluster.models.base import AEOutput, AutoEncoder
from aecluster.schema import Bool, Int, ListOf, Options, Rule, Table


def conv_bn_relu(cin: int, cout: int, stride: int, batchnorm: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=not batchnorm),
        nn.BatchNorm2d(cout) if batchnorm else nn.Identity(),
        nn.ReLU(inplace=True),
    )


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, batchnorm: bool) -> None:
        super().__init__()
        norm = nn.BatchNorm2d if batchnorm else (lambda _: nn.Identity())
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=not batchnorm), norm(cout), nn.ReLU(True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=not batchnorm), norm(cout),
        )  # fmt: skip
        self.shortcut = (
            nn.Identity()
            if cin == cout and stride == 1
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=not batchnorm), norm(cout))
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def block(cin: int, cout: int, stride: int, batchnorm: bool, residual: bool) -> nn.Module:
    return (ResBlock if residual else conv_bn_relu)(cin, cout, stride, batchnorm)


UPSAMPLERS = {
    "pixelshuffle": lambda cin, cout: [nn.Conv2d(cin, cout * 4, 3, 1, 1), nn.PixelShuffle(2)],
    "transpose": lambda cin, cout: [nn.ConvTranspose2d(cin, cout, 4, 2, 1)],
}


def up_block(cin: int, cout: int, mode: str, batchnorm: bool) -> nn.Sequential:
    up = UPSAMPLERS[mode](cin, cout)
    return nn.Sequential(*up, nn.BatchNorm2d(cout) if batchnorm else nn.Identity(), nn.ReLU(True))


@register("conv")
class ConvAE(AutoEncoder):
    params = Table(
        {
            "widths": ListOf(Int(1, 1024), 2, 6),
            "batchnorm": Bool(),
            "residual": Bool(),
            "decoder_residual": Bool(),
            "downsample": Options(("maxpool", "stride")),
            "upsample": Options(tuple(UPSAMPLERS)),
            "bottleneck": Int(1, 4096),
            "variational": Bool(),
            "pool_latent": Bool(),
        },
        rules=(
            Rule(lambda p: not p.get("variational") or p.get("bottleneck"),
                 "a variational model needs a bottleneck size"),
        ),
    )  # fmt: skip

    def __init__(
        self,
        widths: tuple[int, ...] | list[int] = (32, 64, 128, 256),
        batchnorm: bool = True,
        residual: bool = False,
        decoder_residual: bool | None = None,
        downsample: str = "maxpool",
        upsample: str = "transpose",
        bottleneck: int | None = None,
        variational: bool = False,
        pool_latent: bool = False,
    ) -> None:
        super().__init__()
        widths = list(widths)
        self.reduction = 2 ** (len(widths) - 1)  # of the side, encoder input to feature map
        side = IMAGE_SIZE // self.reduction
        self.feature_shape = (widths[-1], side, side)
        flat = widths[-1] * side * side
        self.variational, self.pool_latent = variational, pool_latent

        enc: list[nn.Module] = [conv_bn_relu(3, widths[0], 1, batchnorm)]
        for cin, cout in zip(widths, widths[1:], strict=False):
            if downsample == "stride":
                enc.append(block(cin, cout, 2, batchnorm, residual))
            else:
                enc += [block(cin, cout, 1, batchnorm, residual), nn.MaxPool2d(2)]
        self.encoder = nn.Sequential(*enc)

        self.to_latent = self.from_latent = None
        if bottleneck:
            self.to_latent = nn.Linear(flat, bottleneck * (2 if variational else 1))
            self.from_latent = nn.Sequential(nn.Linear(bottleneck, flat), nn.ReLU(True))
        self.latent_dim = bottleneck or (widths[-1] if pool_latent else flat)
        self.any_size = pool_latent and not bottleneck

        decoder_residual = residual if decoder_residual is None else decoder_residual
        dec: list[nn.Module] = []
        for cin, cout in zip(widths[::-1], widths[-2::-1], strict=False):
            dec.append(up_block(cin, cout, upsample, batchnorm))
            if decoder_residual:
                dec.append(ResBlock(cout, cout, 1, batchnorm))
        dec += [nn.Conv2d(widths[0], 3, 3, 1, 1), nn.Tanh()]
        self.decoder = nn.Sequential(*dec)

    def reconstructs(self, side: int) -> bool:
        return side == IMAGE_SIZE or (self.any_size and side % self.reduction == 0)

    def view_sides(self) -> str:
        return f"any multiple of {self.reduction}" if self.any_size else super().view_sides()

    def _code(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(feature map, latent, log-variance or None)."""
        h = self.encoder(x)
        if self.to_latent is None:
            return h, (h.mean((2, 3)) if self.pool_latent else h.flatten(1)), None
        z = self.to_latent(h.flatten(1))
        if self.variational:
            mu, logvar = z.chunk(2, dim=1)
            return h, mu, logvar
        return h, z, None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._code(x)[1]

    def forward(self, x: torch.Tensor) -> AEOutput:
        h, z, logvar = self._code(x)
        kl = None
        if logvar is not None:
            kl = -0.5 * torch.mean(torch.sum(1 + logvar - z.pow(2) - logvar.exp(), dim=1))
            if self.training:
                z = z + torch.randn_like(z) * (0.5 * logvar).exp()
        if self.from_latent is not None:
            h = self.from_latent(z).view(-1, *self.feature_shape)
        return AEOutput(recon=self.decoder(h), latent=z, kl=kl)
