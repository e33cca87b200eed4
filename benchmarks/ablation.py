"""Ablation: each improvement switched on or off, everything else as in a base recipe.

    python benchmarks/ablation.py --epochs 4 --finetune-epochs 2 > benchmarks/results_ablation.md

Every variant trains for the same number of epochs (and fine-tuning epochs, where it fine-tunes)
on trainX (seed 0), then valX is clustered together with trainX by the variant's pipeline and
scored (labels only score).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from aecluster.checkpoint import load_model
from aecluster.data import load_images, load_labels
from aecluster.metrics import scores
from aecluster.predict import cluster_codes, embed
from aecluster.recipes import apply_overrides, load_recipe
from aecluster.training import train

REPO = Path(__file__).resolve().parents[1]
PCA32 = "cluster.reduce=[{name='normalize'},{name='pca',n_components=32}]"
# each variant: overrides of the base recipe; a dict under "params" changes only those model
# parameters, keeping the base recipe's others
VARIANTS: dict[str, list[str] | dict] = {
    "best recipe (reconstruction + contrastive, SCAN fine-tuning)": [],
    "- SCAN fine-tuning (SCAN heads on the frozen codes)": ["finetune.epochs=0"],
    "- SCAN self-labelling and fine-tuning":
        ["finetune.epochs=0", "cluster.method={name='scan',self_label_epochs=0}"],
    "KMeans on normalised PCA(32) codes instead of SCAN":
        ["finetune.epochs=0", PCA32, "cluster.method={name='kmeans'}"],
    "MiniBatchKMeans on the same instead of SCAN":
        ["finetune.epochs=0", PCA32, "cluster.method={name='minibatch_kmeans'}"],
    "- contrastive loss (reconstruction only)": ["loss.contrastive=0.0"],
    "+ rotation loss (beta = 10)": ["loss.rotation=10.0"],
    "rotation instead of contrastive (the reports' best idea)":
        ["loss.contrastive=0.0", "loss.rotation=10.0"],
    "- colour jitter and grayscale in the views": ["views={crop={scale=[0.2,1.0]}}"],
    "- BatchNorm": {"params": {"batchnorm": False}},
    "- residual blocks": {"params": {"residual": False}},
    "+ residual blocks in the decoder too": {"params": {"decoder_residual": True}},
    "wider encoder (24-48-96-192)": {"params": {"widths": [24, 48, 96, 192]}},
    "constant learning rate instead of cosine decay": ["train.lr_schedule='constant'"],
    "VAE with a 64-d fully connected bottleneck":
        {"params": {"bottleneck": 64, "variational": True, "pool_latent": False},
         "sets": ["loss.kl=0.001"]},
    "denoising input (noise std 0.1)": ["augment={noise={std=0.1}}"],
    "SGD with momentum instead of Adam": ["train.optimizer='sgd'", "train.lr=0.05"],
}  # fmt: skip


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def variant_overrides(base: dict, variant: list[str] | dict) -> list[str]:
    if isinstance(variant, list):
        return variant
    params = {**base["model"]["params"], **variant.get("params", {})}
    inline = ",".join(f"{k}={_toml(v)}" for k, v in params.items())
    return [f"model.params={{{inline}}}", *variant.get("sets", [])]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared/data/hw9like")
    p.add_argument("--recipe", default="best")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--skip", type=int, default=0, help="start after this many variants "
                   "(to finish an interrupted run)")  # fmt: skip
    args = p.parse_args()
    d = args.data_dir
    train_x, val_x = load_images(d / "trainX.npy"), load_images(d / "valX.npy")
    val_y = load_labels(d / "valY.npy", len(val_x))
    base = load_recipe(args.recipe)
    print(f"Each variant: {args.epochs} epochs on `{d}/trainX.npy` (then {args.finetune_epochs} "
          f"of SCAN fine-tuning where the variant fine-tunes), seed 0. "
          f"Command: `python {' '.join(sys.argv)}`\n")  # fmt: skip
    print("| variant | val accuracy | val NMI | minutes |\n|---|---|---|---|")
    for name, variant in list(VARIANTS.items())[args.skip :]:
        sets = variant_overrides(base, variant)
        length = [f"train.epochs={args.epochs}", f"train.checkpoint_every={args.epochs}"]
        if base["finetune"]["epochs"]:
            length.append(f"finetune.epochs={args.finetune_epochs}")
        recipe = apply_overrides(base, [*length, *sets])
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            train(train_x, recipe, Path(tmp) / "m.pth", progress=False)
            model, recipe = load_model(Path(tmp) / "m.pth")
            minutes = (time.monotonic() - t0) / 60
        labels = cluster_codes(embed(model, val_x), recipe, context=embed(model, train_x))
        s = scores(val_y, labels)
        print(f"| {name} | {s['accuracy']:.3f} | {s['nmi']:.3f} | {minutes:.1f} |", flush=True)


if __name__ == "__main__":
    main()
