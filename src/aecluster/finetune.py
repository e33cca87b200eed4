"""SCAN fine-tuning, the phase after the autoencoder's epochs (Van Gansbeke et al., 2020, step 2).

The recipe's SCAN clustering of the chosen checkpoint's codes picks the clustering head and each
image's neighbours; then encoder, decoder and head are trained together so that augmented views
of an image and of one of its neighbours land in the same cluster (SCAN loss), while the
autoencoder keeps reconstructing the view, of `loss.reconstruct_share` of each batch as in its
epochs (so a fine-tuning epoch costs what the planner assumes: an autoencoder epoch). The trained
head becomes the checkpoint's clustering method (`cluster.method = {name = "head", ...}`), so it
labels new images too.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from aecluster.augment import build_augment
from aecluster.cluster import CLUSTERERS, build_step
from aecluster.data import ImageBatches, batch_loader, to_tensor
from aecluster.device import autocast, to_device
from aecluster.losses import reconstructed
from aecluster.models import AutoEncoder
from aecluster.predict import embed
from aecluster.progress import progress_bar
from aecluster.scan import ClusterHead, scan_features, scan_loss
from aecluster.seeding import check_finite, seed_everything


def scan_finetune(
    model: AutoEncoder,
    images: np.ndarray,
    recipe: dict,
    layout: torch.memory_format = torch.contiguous_format,
    progress: bool = True,
    workers: int = 0,
    out_of_time: Callable[[], bool] = lambda: False,
    another_fits: Callable[[float], bool] = lambda minutes: False,
) -> tuple[dict, int]:
    """Fine-tune `model` in place on uint8 images (in RAM or memory-mapped); return the head
    as a `cluster.method` and the number of epochs finished. Ends early, after the batch where
    `out_of_time()` turns true (a time budget: the planner's estimate of a fine-tuning epoch may
    be short). After the planned `finetune.epochs`, runs more while `another_fits(minutes)`,
    given the measured minutes of a fine-tuning epoch (a budget whose planned share of what
    precedes fine-tuning, timed on a sample before the epochs, was not all used)."""
    cfg, cluster = recipe["finetune"], recipe["cluster"]
    device = next(model.parameters()).device
    place = lambda t: to_device(t, device, layout)  # noqa: E731
    scan = build_step(CLUSTERERS, cluster["method"], cluster["n_clusters"], seed=cluster["seed"])
    scan.fit(embed(model, images))
    model.train()
    head, neighbors = scan.head_.to(device), scan.neighbors_
    features = lambda z: scan_features(z, scan.mean_, scan.scale_)  # noqa: E731
    views = build_augment(recipe["views"])
    rows_of = ImageBatches(images)
    optimizer = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=cfg["lr"],
                                 weight_decay=cfg["weight_decay"])  # fmt: skip
    n, k, bs = len(images), neighbors.shape[1], recipe["train"]["batch_size"]
    seed = recipe["train"]["seed"] * 100_003 + recipe["train"]["epochs"]
    finished, t0 = 0, time.monotonic()
    bar = progress_bar(itertools.count(), desc="SCAN fine-tuning", total=cfg["epochs"],
                       enabled=progress)  # fmt: skip
    for epoch in bar:
        if epoch >= cfg["epochs"] and not another_fits(
            (time.monotonic() - t0) / 60 / max(epoch, 1)
        ):
            break
        if out_of_time():
            if progress:
                tqdm.write(
                    f"the time budget ended fine-tuning after {finished} of its "
                    f"{cfg['epochs']} epochs"
                )
            break
        seed_everything(seed + epoch)
        g = torch.Generator().manual_seed(seed + epoch)
        batches = [idx for idx in torch.randperm(n, generator=g).split(bs) if len(idx) > 1]
        for idx, rows in zip(batches, batch_loader(images, batches, workers), strict=True):
            if out_of_time():
                break
            pick = neighbors[idx, torch.randint(0, k, (len(idx),), generator=g)]
            anchors = place(views(to_tensor(rows.numpy()), g))
            others = place(views(to_tensor(rows_of[pick].numpy()), g))
            with autocast(device, recipe["train"]["precision"]):
                out, latent = model.forward_share(anchors, reconstructed(recipe["loss"], len(idx)))
                loss = scan_loss(
                    head(features(latent.float())),
                    head(features(model.encode(others).float())),
                    scan.entropy_weight,
                ) + recipe["loss"]["reconstruction"] * F.mse_loss(
                    out.recon.float(), anchors[: len(out.recon)]
                )
            check_finite(loss, f"SCAN fine-tuning epoch {epoch + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        else:  # the epoch ran to its end
            finished += 1
    scan.head_ = head.cpu()
    params = ClusterHead.from_scan(scan).get_params()
    return {"name": "head", **{k: v for k, v in params.items() if k != "n_clusters"}}, finished
