"""Embedding images with a trained encoder, clustering them and writing predictions."""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from aecluster.cluster import ClusterPipeline, pipeline_from_recipe
from aecluster.data import as_images, iter_batches
from aecluster.errors import InputError
from aecluster.files import atomic_path, check_input_file, check_output_path, write_csv
from aecluster.models import AutoEncoder
from aecluster.progress import progress_bar

BATCH = 512


def _batches(images: np.ndarray, desc: str, progress: bool):
    total = -(-len(images) // BATCH)
    return progress_bar(iter_batches(images, BATCH), total=total, desc=desc, enabled=progress,
                leave=False)  # fmt: skip


NO_TTA = {"flip": False, "crops": 0, "scale": 1.0}
CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1), (0.5, 0.5))  # where a crop sits, as shares of the room


def tta_views(x: torch.Tensor, tta: dict) -> list[torch.Tensor]:
    """The fixed views of a batch whose codes `cluster.tta` averages: the images, `crops`
    crops of `scale` of their side (the four corners, then the centre) resized back to the
    images' size, and with `flip` the mirror image of each."""
    side = x.shape[-1]
    c = max(1, round(side * tta["scale"]))
    views = [x]
    for top, left in CORNERS[: tta["crops"]]:
        i, j = round(top * (side - c)), round(left * (side - c))
        crop = x[..., i : i + c, j : j + c]
        views.append(F.interpolate(crop, size=x.shape[-2:], mode="bilinear", align_corners=False))
    return views + [v.flip(-1) for v in views] if tta["flip"] else views


def n_tta_views(tta: dict) -> int:
    return (1 + tta["crops"]) * (2 if tta["flip"] else 1)


@torch.inference_mode()
def embed(
    model: AutoEncoder, images: np.ndarray, progress: bool = False, tta: dict = NO_TTA
) -> np.ndarray:
    """Latent codes (N, latent_dim) of images, encoder only, in batches; with `tta` (a recipe's
    `cluster.tta`) each code is the mean over the image's test views."""
    images = as_images(images, "images")
    model.eval()
    device = next(model.parameters()).device
    codes = np.empty((len(images), model.latent_dim), dtype=np.float32)
    for start, x in zip(range(0, len(images), BATCH), _batches(images, "embed", progress),
                        strict=True):  # fmt: skip
        views = tta_views(x.to(device), tta)
        code = sum(model.encode(v).float() for v in views) / len(views)
        codes[start : start + len(x)] = code.cpu().numpy()
    return codes


class EncodedImages:
    """The codes of `images`, computed when indexed (`codes[rows]`): a clustering fitted on a
    sample of a large set embeds the sample, then places the rest chunk by chunk, and never
    holds every code at once."""

    def __init__(self, model: AutoEncoder, images: np.ndarray, tta: dict = NO_TTA) -> None:
        self.model, self.images, self.tta = model, as_images(images, "images"), tta

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, rows: slice | np.ndarray) -> np.ndarray:
        return embed(self.model, self.images[rows], tta=self.tta)


@torch.inference_mode()
def reconstruction_errors(
    model: AutoEncoder, images: np.ndarray, progress: bool = False
) -> np.ndarray:
    """Per-image mean squared reconstruction error, on the [-1, 1] scale."""
    images = as_images(images, "images")
    model.eval()
    device = next(model.parameters()).device
    errs = [
        ((model(x).recon - x) ** 2).mean((1, 2, 3)).float().cpu().numpy()
        for x in (b.to(device) for b in _batches(images, "reconstruct", progress))
    ]
    return np.concatenate(errs)


def fit_cluster_pipeline(
    codes: np.ndarray,
    recipe: dict,
    n_clusters: int | None = None,
    context: np.ndarray | None = None,
) -> ClusterPipeline:
    """The recipe's reduction and clustering, fitted on `codes`.

    With `context` (e.g. trainX's codes) it is fitted on context and codes together, as
    `hw9_best.sh` clusters all of trainX; `labels_` and `embedding_` then end with the codes' rows.
    """
    fit_on = codes if context is None else np.concatenate([context, codes])
    return pipeline_from_recipe(recipe["cluster"], n_clusters).fit(fit_on)


def cluster_codes(
    codes: np.ndarray,
    recipe: dict,
    n_clusters: int | None = None,
    context: np.ndarray | None = None,
) -> np.ndarray:
    """Cluster labels of `codes` (see fit_cluster_pipeline for `context`)."""
    return fit_cluster_pipeline(codes, recipe, n_clusters, context).labels_[-len(codes) :]


def cluster_images(
    model: AutoEncoder,
    images: np.ndarray,
    recipe: dict,
    n_clusters: int | None = None,
    progress: bool = False,
) -> ClusterPipeline:
    """The recipe's clustering fitted on the codes of `images`; above `cluster.fit_sample`
    images only the sample's codes are computed for fitting, the rest as they are placed."""
    small, tta = len(images) <= recipe["cluster"]["fit_sample"], recipe["cluster"]["tta"]
    codes = embed(model, images, progress, tta) if small else EncodedImages(model, images, tta)
    return fit_cluster_pipeline(codes, recipe, n_clusters)


def predict(
    model: AutoEncoder,
    recipe: dict,
    images: np.ndarray,
    n_clusters: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Cluster labels (N,) for images, using the recipe's reduction and clustering settings."""
    return cluster_images(model, images, recipe, n_clusters, progress).labels_


def write_predictions(path: str | os.PathLike, labels: np.ndarray, overwrite: bool = True) -> None:
    """`id,label` CSV with ids 0..N-1, written atomically."""
    path = check_output_path(path, overwrite=overwrite)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("id,label\n")
        f.writelines(f"{i},{int(label)}\n" for i, label in enumerate(labels))


def write_clusters(
    path: str | os.PathLike,
    names: list[str],
    labels: np.ndarray,
    confidence: np.ndarray,
    overwrite: bool = True,
) -> None:
    """`path,cluster,confidence` CSV, one row per image file, written atomically."""
    path = check_output_path(path, overwrite=overwrite)
    rows = ((n, int(c), f"{p:.4f}") for n, c, p in zip(names, labels, confidence, strict=True))
    write_csv(path, ("path", "cluster", "confidence"), rows)


def read_predictions(path: str | os.PathLike) -> np.ndarray:
    """The labels of an `id,label` prediction CSV."""
    path = check_input_file(path, "prediction CSV")
    try:
        with warnings.catch_warnings():  # an empty file: refused below, not warned about
            warnings.simplefilter("ignore")
            table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not an id,label prediction CSV ({e})") from None
    if table.shape[1] != 2 or not np.array_equal(table[:, 0], np.arange(len(table))):
        raise InputError(f"{path}: expected columns id,label with ids 0..N-1")
    return table[:, 1]
