"""Batched image augmentations on tensors in [-1, 1], driven by an explicit torch.Generator.

Each transform is a small callable `(x, generator) -> x`; `Compose` chains them. Randomness comes
only from the generator passed in, so a run is reproducible and resumable epoch by epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from aecluster.schema import Bounds, Int, Named, Real, Table

GRAY = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


PROBABILITY = Real(0, 1)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _chance(n: int, p: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g) < p


@dataclass
class RandomResizedCrop:
    """Crop a random area fraction in `scale` with aspect ratio in `ratio`, resize it to
    `size` x `size` pixels (0: the input's size); flip."""

    scale: tuple[float, float] = (0.3, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    size: int = 0
    params: ClassVar[Table] = Table(
        {"scale": Bounds(Real(0, 1, lo_open=True)), "ratio": Bounds(Real(0.1, 10)),
         "flip": PROBABILITY, "size": Int(0, 1024)}
    )  # fmt: skip

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n = len(x)
        area = _uniform(n, *self.scale, g)
        log_r = _uniform(n, *torch.tensor(self.ratio).log().tolist(), g)
        r = log_r.exp()
        w = (area * r).sqrt().clamp(max=1.0)
        h = (area / r).sqrt().clamp(max=1.0)
        cx = _uniform(n, -1.0, 1.0, g) * (1 - w)
        cy = _uniform(n, -1.0, 1.0, g) * (1 - h)
        sign = torch.where(_chance(n, self.flip, g), -1.0, 1.0)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = w * sign, cx
        theta[:, 1, 1], theta[:, 1, 2] = h, cy
        shape = [*x.shape[:2], self.size, self.size] if self.size else list(x.shape)
        grid = F.affine_grid(theta, shape, align_corners=False)
        return F.grid_sample(
            x, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )


@dataclass
class ColorJitter:
    """Random brightness, contrast and saturation, applied with probability `p`."""

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    p: float = 0.8
    params: ClassVar[Table] = Table({"brightness": PROBABILITY, "contrast": PROBABILITY,
                                     "saturation": PROBABILITY, "p": PROBABILITY})  # fmt: skip

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n = len(x)
        apply = _chance(n, self.p, g).view(n, 1, 1, 1)
        img = (x + 1) / 2
        b = _uniform(n, 1 - self.brightness, 1 + self.brightness, g).view(n, 1, 1, 1)
        c = _uniform(n, 1 - self.contrast, 1 + self.contrast, g).view(n, 1, 1, 1)
        s = _uniform(n, 1 - self.saturation, 1 + self.saturation, g).view(n, 1, 1, 1)
        out = img * b
        mean = (out * GRAY).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        out = (out - mean) * c + mean
        gray = (out * GRAY).sum(1, keepdim=True)
        out = ((out - gray) * s + gray).clamp(0, 1)
        return torch.where(apply, out * 2 - 1, x)


@dataclass
class RandomGrayscale:
    p: float = 0.2
    params: ClassVar[Table] = Table({"p": PROBABILITY})

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        gray = (x * GRAY).sum(1, keepdim=True).expand_as(x)
        return torch.where(_chance(len(x), self.p, g).view(-1, 1, 1, 1), gray, x)


@dataclass
class GaussianNoise:
    """Additive noise, for a denoising autoencoder."""

    std: float = 0.1
    params: ClassVar[Table] = Table({"std": Real(0, 2)})

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return (x + self.std * torch.randn(x.shape, generator=g)).clamp(-1, 1)


class Compose:
    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, g)
        return x


TRANSFORMS = {
    "crop": RandomResizedCrop,
    "color": ColorJitter,
    "grayscale": RandomGrayscale,
    "noise": GaussianNoise,
}


def build_augment(spec: dict[str, dict]) -> Compose | None:
    """`{"crop": {"scale": [0.3, 1.0]}, "color": {}}` -> Compose, in the order given."""
    Named(TRANSFORMS).check(spec, "augment")
    if not spec:
        return None
    return Compose(
        TRANSFORMS[name](**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
        for name, params in spec.items()
    )


def rotate90(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Rotate each image x[i] by k[i] * 90 degrees."""
    out = x.clone()
    for quarter in range(1, 4):
        idx = (k == quarter).nonzero().flatten()
        if len(idx):
            out[idx] = torch.rot90(x[idx], quarter, dims=(2, 3))
    return out
