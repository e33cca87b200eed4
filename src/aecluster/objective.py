"""What the autoencoder/self-supervised phase minimises: the reconstruction loss plus the
auxiliary losses a recipe switches on (rotation, SimCLR's contrastive loss on two views and any
multi-crop views), with their heads and view transforms."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aecluster.augment import build_augment, rotate90
from aecluster.data import IMAGE_SIZE
from aecluster.device import to_device
from aecluster.errors import InputError
from aecluster.losses import ProjectionHead, RotationHead, nt_xent, reconstructed
from aecluster.models import AutoEncoder


class Objective(nn.Module):
    """Reconstruction MSE plus the auxiliary losses the recipe switches on, and their heads."""

    def __init__(
        self,
        model: AutoEncoder,
        recipe: dict,
        layout: torch.memory_format = torch.contiguous_format,
    ) -> None:
        super().__init__()
        self.model = model
        self.layout = layout
        self.weights = recipe["loss"]
        self.augment = build_augment(recipe["augment"])
        self.views = build_augment(recipe["views"])
        self.rotation_head = RotationHead(model.latent_dim) if self.weights["rotation"] else None
        self.projection = ProjectionHead(model.latent_dim) if self.weights["contrastive"] else None
        side = crop_size(recipe["views"]) if self.projection is not None else 0
        if side and not model.reconstructs(side):
            raise InputError(
                f"views.crop.size = {side}: the model cannot reconstruct views of that size (it "
                f"takes {model.view_sides()}); set views.crop.size = 0 for the images' own size"
            )
        # the autoencoder's input is its reconstruction target, augmented: the same size
        input_side = crop_size(recipe["augment"])
        if input_side not in (0, side or IMAGE_SIZE):
            raise InputError(
                f"augment.crop.size = {input_side}: the autoencoder's input "
                f"must have the side of its reconstruction target ({side or IMAGE_SIZE}); set "
                "augment.crop.size = 0"
            )
        self.crops = recipe["crops"]["count"] if self.projection is not None else 0
        if self.crops and not model.any_size:
            raise InputError(
                "crops.count needs a model whose latent code is pooled over the image "
                "(model.params.pool_latent = true, no bottleneck); set crops.count = 0"
            )
        self.crop_views = (build_augment(small_crop_views(recipe["views"], recipe["crops"]))
                           if self.crops else None)  # fmt: skip

    def forward(self, x: torch.Tensor, g: torch.Generator) -> dict[str, torch.Tensor]:
        """Loss terms for a CPU batch `x`; augmentations draw from the CPU generator `g` (so a
        run is the same on any device), the model runs on its own device."""
        w = self.weights
        device = next(self.model.parameters()).device
        place = lambda t: to_device(t, device, self.layout)  # noqa: E731
        # with a contrastive loss the autoencoder reconstructs the first view, so that one
        # encoder pass serves both losses (the encoder is a third of the step's time)
        target = self.views(x, g) if self.projection is not None else x
        inputs = self.augment(target, g) if self.augment else target
        # the decoder costs as much as the encoder: with a contrastive loss it may reconstruct
        # only a share of the batch, while every image is encoded
        m = len(x) if self.projection is None else reconstructed(w, len(x))
        out, latent = self.model.forward_share(place(inputs), m)
        # a denoising/augmenting autoencoder still reconstructs the un-noised target
        terms = {"reconstruction": F.mse_loss(out.recon, place(target[:m]))}
        if w["kl"]:
            terms["kl"] = out.kl
        if self.rotation_head is not None:
            k = torch.randint(0, 4, (len(x),), generator=g)
            logits = self.rotation_head(self.model.encode(place(rotate90(x, k))))
            terms["rotation"] = F.cross_entropy(logits, k.to(device))
        if self.projection is not None:
            z2 = self.model.encode(place(self.views(x, g)))
            projections = [self.projection(latent), self.projection(z2)]
            if self.crops:  # all small crops in one encoder pass
                small = self.crop_views(x.repeat(self.crops, 1, 1, 1), g)
                projections += self.projection(self.model.encode(place(small))).chunk(self.crops)
            terms["contrastive"] = nt_xent(*projections, temperature=w["temperature"])
        terms["loss"] = sum(w[name] * value for name, value in terms.items())
        return terms


def crop_size(transforms: dict) -> int:
    """The side a recipe's transforms crop images to (0: the images' own)."""
    return transforms.get("crop", {}).get("size", 0)


def small_crop_views(views: dict, crops: dict) -> dict:
    """The transforms of a multi-crop view: the contrastive views' own, with their crop
    narrowed to `crops.scale` and resized to `crops.size` pixels."""
    crop = {**views.get("crop", {}), "scale": crops["scale"], "size": crops["size"]}
    return {"crop": crop, **{k: v for k, v in views.items() if k != "crop"}}
