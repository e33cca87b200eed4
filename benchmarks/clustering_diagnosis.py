"""Is it the features or the clustering? One trained model's codes clustered several ways.

    python benchmarks/clustering_diagnosis.py --sets digits [--set finetune.epochs=0]
    python benchmarks/clustering_diagnosis.py --sets dev --checkpoint checkpoints/best.pth
    python benchmarks/clustering_diagnosis.py --sets cifar --codes-only \
        --checkpoint RUNS/cifar_seed0/epoch_0133.pth

Trains the recipe on each set as `protocol.py` does (or, with --checkpoint, uses that model: a
final checkpoint or an epoch checkpoint of a run, its BatchNorm recalibrated as training does),
then scores on the set's first scored images:
- the codes themselves: a linear probe (logistic regression on the normalised codes, 5-fold
  cross-validated accuracy), the most any linear partition of them could reach; and the share of
  each image's 20 nearest neighbours (cosine) in its class, what SCAN's neighbour mining sees;
- clusterings: the recipe's own (when the model has one); KMeans on the normalised codes;
  standardize -> t-SNE -> KMeans on the codes; and SCAN refitted on the codes with a few settings
  (not with --codes-only).
For `dev`, trainX and devX are clustered together (as hw9_best.sh clusters trainX). Labels only
score: nothing here feeds back into a recipe. Prints one line per score.
"""

from __future__ import annotations

import argparse

import numpy as np
from protocol import load_set
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

from aecluster.cluster import ClusterPipeline
from aecluster.estimator import AECluster
from aecluster.metrics import scores
from aecluster.scan import SCAN
from aecluster.training import restore_as_trained

TSNE = [{"name": "standardize"}, {"name": "tsne", "n_components": 2}]
SCAN_VARIANTS = ({}, {"steps": 8000}, {"entropy_weight": 5.0})  # 5: SCAN's paper


def code_scores(codes: np.ndarray, truth: np.ndarray, neighbours: int = 20) -> dict[str, float]:
    """How well labelled codes separate their classes, whatever clusters them: 5-fold linear
    probe accuracy and the mean share of each code's nearest neighbours in its class."""
    z = normalize(codes)
    probe = cross_val_score(LogisticRegression(max_iter=2000), z, truth, cv=5).mean()
    nearest = NearestNeighbors(n_neighbors=neighbours + 1).fit(z).kneighbors(z)[1][:, 1:]
    purity = (truth[nearest] == truth[:, None]).mean()
    return {"linear probe (5-fold)": float(probe), f"{neighbours}-NN purity": float(purity)}


def load_recalibrated(path: str, train_images: np.ndarray) -> AECluster:
    """A checkpoint's estimator with BatchNorm recalibrated on the training images as training
    does after its epochs (an epoch checkpoint holds the augmented views' statistics; for a
    final checkpoint this recomputes the same ones)."""
    model = AECluster.load(path)
    restore_as_trained(model.model_, train_images, model.recipe_)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", choices=("dev", "cifar", "digits"), default=["digits"])
    ap.add_argument("--recipe", default="best")
    ap.add_argument("--checkpoint")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], dest="settings")
    ap.add_argument("--codes-only", action="store_true",
                    help="score the codes and KMeans only, not the slower clusterings")  # fmt: skip
    args = ap.parse_args()
    for name in args.sets:
        train_images, k, scored = load_set(name)
        images, truth = next(iter(scored.values()))
        if args.checkpoint:
            model = load_recalibrated(args.checkpoint, train_images)
        else:
            model = AECluster(n_clusters=k, recipe=args.recipe, budget_minutes=None,
                              device="cpu", random_state=args.seed,
                              settings=tuple(args.settings)).fit(train_images)  # fmt: skip
        same = images is train_images
        codes = model.transform(train_images)
        if not same:
            codes = np.concatenate([codes, model.transform(images)])
        tail = slice(len(codes) - len(images), None)
        for way, value in code_scores(codes[tail], truth).items():
            print(f"{name} | {way} | {value:.3f}", flush=True)
        ways = {"KMeans on normalised codes": KMeans(k, n_init=10, random_state=0)
                .fit_predict(normalize(codes))[tail]}  # fmt: skip
        if hasattr(model, "pipeline_"):
            ways["recipe's clustering"] = model.predict(images)
        if not args.codes_only:
            tsne = ClusterPipeline(TSNE, {"name": "kmeans"}, k).fit(codes)
            ways["standardize -> t-SNE -> KMeans"] = tsne.labels_[tail]
            for params in SCAN_VARIANTS:
                ways[f"SCAN {params or 'defaults'}"] = SCAN(k, **params).fit(codes).labels_[tail]
        for way, labels in ways.items():
            result = scores(truth, labels)
            print(f"{name} | {way} | accuracy {result['accuracy']:.3f} | NMI {result['nmi']:.3f}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
