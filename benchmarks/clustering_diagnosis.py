"""Is it the features or the clustering? One trained model's codes clustered several ways.

    python benchmarks/clustering_diagnosis.py --sets digits [--set finetune.epochs=0]
    python benchmarks/clustering_diagnosis.py --sets dev --checkpoint checkpoints/best.pth

Trains the recipe on each set as `protocol.py` does (or, with --checkpoint, uses that model),
then scores on the set's first scored images: the recipe's own clustering; KMeans on the
normalised codes; standardize -> t-SNE -> KMeans on the codes; and SCAN refitted on the codes with
a few settings. For `dev`, trainX and devX are clustered together (as hw9_best.sh clusters
trainX). Labels only score. Prints one line per clustering.
"""

from __future__ import annotations

import argparse

import numpy as np
from protocol import load_set
from sklearn.cluster import KMeans
from sklearn.preprocessing import normalize

from aecluster.cluster import ClusterPipeline
from aecluster.estimator import AECluster
from aecluster.metrics import scores
from aecluster.scan import SCAN

TSNE = [{"name": "standardize"}, {"name": "tsne", "n_components": 2}]
SCAN_VARIANTS = ({}, {"steps": 8000}, {"entropy_weight": 5.0})  # 5: SCAN's paper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", choices=("dev", "cifar", "digits"), default=["digits"])
    ap.add_argument("--recipe", default="best")
    ap.add_argument("--checkpoint")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], dest="settings")
    args = ap.parse_args()
    for name in args.sets:
        train_images, k, scored = load_set(name)
        images, truth = next(iter(scored.values()))
        if args.checkpoint:
            model = AECluster.load(args.checkpoint)
        else:
            model = AECluster(n_clusters=k, recipe=args.recipe, budget_minutes=None,
                              device="cpu", random_state=args.seed,
                              settings=tuple(args.settings)).fit(train_images)  # fmt: skip
        same = images is train_images
        codes = model.transform(train_images)
        if not same:
            codes = np.concatenate([codes, model.transform(images)])
        tail = slice(len(codes) - len(images), None)
        ways = {
            "recipe's clustering": model.predict(images),
            "KMeans on normalised codes": KMeans(k, n_init=10, random_state=0)
            .fit_predict(normalize(codes))[tail],
            "standardize -> t-SNE -> KMeans": ClusterPipeline(TSNE, {"name": "kmeans"}, k)
            .fit(codes).labels_[tail],
        }  # fmt: skip
        for params in SCAN_VARIANTS:
            ways[f"SCAN {params or 'defaults'}"] = SCAN(k, **params).fit(codes).labels_[tail]
        for way, labels in ways.items():
            result = scores(truth, labels)
            print(f"{name} | {way} | accuracy {result['accuracy']:.3f} | NMI {result['nmi']:.3f}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
