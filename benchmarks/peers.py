"""Side by side on the protocol's three sets: every recipe under one budget, and two peers.

    python benchmarks/peers.py --budget-minutes 10 [--sets dev cifar digits] [--seed 0] \
        [--recipes baseline improved best demo] [--peers-python /tmp/peers/bin/python] \
        [--jobs 2] [--log peers_runs.jsonl]

Each recipe is trained as a new user would (`AECluster(recipe, n_clusters, budget_minutes)` on
the set's training images, see `protocol.py` for the sets) and scored on the set's labelled
images: accuracy, NMI, ARI, the minutes of `fit` (training, then clustering the training images)
and the seconds `predict` takes on the scored images (on hw9like: devX and valX). The peers
cluster the training and scored images together, as 32x32 images: raw pixels -> PCA(50) ->
KMeans, and clustimage (HOG features, t-SNE, agglomerative; installed only for the benchmark, in
its own venv given by --peers-python); their "prediction" is the whole clustering. Labels only
score.
`--jobs 2` trains two recipes at once on one thread each: on the 2-core CPU every run then shares
the machine with one other run, and its budget buys the epochs of one thread.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from protocol import load_set, run
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from aecluster.data import to_tensor, to_uint8_images
from aecluster.metrics import scores

REPO = Path(__file__).resolve().parents[1]
SCORED = {"dev": "dev", "cifar": "cifar val", "digits": "digits"}


def clustered_together(name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """32x32 images of the training and scored sets (the scored set last, once), its labels, k."""
    train, k, scored = load_set(name)
    images, truth = scored[SCORED[name]]
    together = train if images is train else np.concatenate([train, images])
    return to_uint8_images(to_tensor(np.asarray(together))), truth, k


def pixels_labels(images: np.ndarray, k: int) -> np.ndarray:
    """The peer without training: raw pixels -> PCA(50) -> KMeans."""
    z = PCA(50, random_state=0).fit_transform(images.reshape(len(images), -1) / 255.0)
    return KMeans(k, n_init=10, random_state=0).fit_predict(z)


def clustimage_labels(images: np.ndarray, k: int, python: str) -> np.ndarray:
    """clustimage, run by `python` (its own venv) on 32x32 images."""
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/images.npy", images)
        subprocess.run([python, str(REPO / "benchmarks/peer_clustimage.py"), f"{tmp}/images.npy",
                        str(k), f"{tmp}/labels.npy"], check=True, capture_output=True)  # fmt: skip
        return np.load(f"{tmp}/labels.npy")


def peer_row(name: str, method: str, labels_of: Callable[[np.ndarray, int], np.ndarray]) -> dict:
    images, truth, k = clustered_together(name)
    t0 = time.monotonic()
    labels = labels_of(images, k)[-len(truth) :]
    return {"set": name, "method": method, **scores(truth, labels), "train_minutes": 0.0,
            "predict_s": time.monotonic() - t0}  # fmt: skip


def recipe_row(name: str, recipe: str, budget: float, seed: int, threads: int | None) -> dict:
    row = run(name, recipe, budget, seed, [], threads=threads)
    scored = row[SCORED[name]]
    epochs = f"{row['epochs']} epochs" + (f" + {row['finetune_epochs']} fine-tuning"
                                          if row["finetune_epochs"] else "")  # fmt: skip
    return {"set": name, "method": f"{recipe} recipe ({epochs})", **scored,
            "train_minutes": row["minutes"], "predict_s": row["predict_s"]}  # fmt: skip


def table(rows: list[dict]) -> str:
    out = ["| set | method | accuracy | NMI | ARI | fit (min) | prediction (s) |",
           "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in sorted(rows, key=lambda r: list(SCORED).index(r["set"])):
        out.append(f"| {SCORED[r['set']]} | {r['method']} | {r['accuracy']:.3f} | "
                   f"{r['nmi']:.3f} | {r['ari']:.3f} | {r['train_minutes']:.1f} | "
                   f"{r['predict_s']:.1f} |")  # fmt: skip
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budget-minutes", type=float, default=10.0)
    ap.add_argument("--sets", nargs="+", choices=list(SCORED), default=list(SCORED))
    ap.add_argument("--recipes", nargs="+", default=["baseline", "improved", "best", "demo"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peers-python", help="a Python with clustimage installed")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--log", type=Path, default=Path("peers_runs.jsonl"))
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    if not args.table_only:
        peers = {"pixels -> PCA(50) -> KMeans": pixels_labels}
        if args.peers_python:
            peers["clustimage (HOG, t-SNE, agglomerative)"] = functools.partial(
                clustimage_labels, python=args.peers_python)  # fmt: skip
        peer_rows = [peer_row(name, method, labels_of)
                     for name in args.sets for method, labels_of in peers.items()]  # fmt: skip
        todo = [(name, recipe, args.budget_minutes, args.seed, 1 if args.jobs > 1 else None)
                for name in args.sets for recipe in args.recipes]  # fmt: skip
        # spawned, not forked: the peers have started torch's and BLAS's thread pools here
        with ProcessPoolExecutor(
            args.jobs, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            for row in itertools.chain(peer_rows, pool.map(recipe_row, *zip(*todo, strict=True))):
                print(json.dumps(row), flush=True)
                with open(args.log, "a") as f:
                    f.write(json.dumps(row) + "\n")
    rows = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print(table(rows))


if __name__ == "__main__":
    main()
