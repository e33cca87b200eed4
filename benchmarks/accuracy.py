"""Side-by-side benchmark on real data: the committed checkpoints and two peers.

    python benchmarks/accuracy.py --data-dir ../shared/data/hw9like [--scored dev] \
        [--peers-python /tmp/peers/bin/python] > benchmarks/results_hw9like.md

For each checkpoint: `hw9_best.sh` wall time on trainX, and val accuracy / NMI / ARI of valX
clustered together with trainX by the checkpoint's own pipeline (labels are used only to score;
`--scored dev` scores devX, the 2000 labelled images of the design protocol, instead of valX).
Peers: raw pixels -> PCA(50) -> KMeans, and clustimage (HOG features; its own venv, optional).
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from peers import clustimage_labels, pixels_labels

from aecluster.checkpoint import load_checkpoint, load_model
from aecluster.data import load_images, load_labels
from aecluster.metrics import scores
from aecluster.predict import cluster_codes, embed
from aecluster.recipes import apply_overrides

REPO = Path(__file__).resolve().parents[1]
# the committed best checkpoint clustered without its fine-tuned SCAN head: what the head adds
BEST_CLUSTERING_VARIANTS = [
    ("`best.pth`, KMeans on normalised PCA(32) codes instead of its head",
     ["cluster.reduce=[{name='normalize'},{name='pca',n_components=32}]",
      "cluster.method={name='kmeans'}"]),
    ("`best.pth`, SCAN fitted anew on its codes instead of its head",
     ["cluster.method={name='scan'}"]),
]  # fmt: skip


def training_summary(state: dict) -> str:
    text = f"{state['train_minutes']:.1f} min, {state['epochs']} epochs"
    if state.get("finetune_minutes"):
        text += f" + {state['finetune_minutes']:.1f} min fine-tuning"
    return text


def checkpoint_row(path: Path, train: np.ndarray, val_x, val_y, train_path: Path) -> dict:
    state = load_checkpoint(path)
    selected = state.get("selected_epoch", state["epochs"])
    chosen = f" (epoch {selected} chosen)" if selected != state["epochs"] else ""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        subprocess.run(["bash", str(REPO / "hw9_best.sh"), str(train_path), str(path),
                        f"{tmp}/pred.csv"], check=True, capture_output=True)  # fmt: skip
        predict_s = time.monotonic() - t0
    model, recipe = load_model(path)
    labels = cluster_codes(embed(model, val_x), recipe, len(np.unique(val_y)), embed(model, train))
    return {"name": f"`{path.name}` ({recipe['name']} recipe)",
            **scores(val_y, labels),
            "train": training_summary(state) + chosen,
            "predict_s": predict_s}  # fmt: skip


def clustering_row(path: Path, name: str, sets: list[str], train, val_x, val_y) -> dict:
    """A committed checkpoint clustered another way (no retraining, no prediction timing)."""
    model, recipe = load_model(path)
    recipe = apply_overrides(recipe, sets)
    labels = cluster_codes(embed(model, val_x), recipe, len(np.unique(val_y)), embed(model, train))
    return {"name": name, **scores(val_y, labels), "train": "(same checkpoint)", "predict_s": None}


def peer_row(name: str, labels_of, train, val_x, val_y) -> dict:
    """A peer clustering trainX and valX together (valX's labels scored)."""
    t0 = time.monotonic()
    labels = labels_of(np.concatenate([train, val_x]), len(np.unique(val_y)))[-len(val_x) :]
    return {"name": f"peer: {name}", **scores(val_y, labels), "train": "none",
            "predict_s": time.monotonic() - t0}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared/data/hw9like")
    p.add_argument(
        "--checkpoints",
        nargs="+",
        type=Path,
        default=[REPO / f"checkpoints/{n}.pth" for n in ("baseline", "improved", "best")],
    )
    p.add_argument("--peers-python", help="a Python with clustimage installed")
    p.add_argument("--scored", choices=("val", "dev"), default="val")
    args = p.parse_args()
    d = args.data_dir
    train, val_x = load_images(d / "trainX.npy"), load_images(d / f"{args.scored}X.npy")
    val_y = load_labels(d / f"{args.scored}Y.npy", len(val_x))
    rows = [checkpoint_row(c, train, val_x, val_y, d / "trainX.npy") for c in args.checkpoints]
    best = REPO / "checkpoints/best.pth"
    rows += [clustering_row(best, name, sets, train, val_x, val_y)
             for name, sets in BEST_CLUSTERING_VARIANTS]  # fmt: skip
    rows.append(peer_row("pixels -> PCA(50) -> KMeans", pixels_labels, train, val_x, val_y))
    if args.peers_python:
        clustimage = functools.partial(clustimage_labels, python=args.peers_python)
        rows.append(peer_row("clustimage 1.7.1 (HOG, t-SNE, agglomerative)", clustimage, train,
                             val_x, val_y))  # fmt: skip
    print(f"Data: `{d}` ({len(train)} train, {len(val_x)} {args.scored} images). "
          f"Command: `python {' '.join(sys.argv)}`\n")  # fmt: skip
    v = args.scored
    print(f"| method | {v} accuracy | {v} NMI | {v} ARI | training | prediction (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        seconds = "-" if r["predict_s"] is None else f"{r['predict_s']:.0f}"
        print(f"| {r['name']} | {r['accuracy']:.3f} | {r['nmi']:.3f} | {r['ari']:.3f} | "
              f"{r['train']} | {seconds} |")  # fmt: skip


if __name__ == "__main__":
    main()
