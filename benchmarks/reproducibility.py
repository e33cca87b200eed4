"""Reproducibility of a training script: train again, compare with the committed checkpoint.

    python benchmarks/reproducibility.py [--script train_best.sh] \
        [--checkpoint checkpoints/best.pth]

Runs the script once more on trainX into a temporary folder, runs `hw9_best.sh` with both
checkpoints, and reports whether the weights are bit-identical, how many trainX predictions agree
(up to renaming the clusters) and each checkpoint's val accuracy (labels used only to score).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from aecluster.checkpoint import load_checkpoint, load_model
from aecluster.data import load_images, load_labels
from aecluster.metrics import cluster_accuracy, scores
from aecluster.predict import cluster_codes, embed, read_predictions

REPO = Path(__file__).resolve().parents[1]


def predictions(checkpoint: Path, train_path: Path, tmp: Path) -> list:
    out = tmp / f"{checkpoint.stem}.csv"
    subprocess.run(["bash", str(REPO / "hw9_best.sh"), str(train_path), str(checkpoint), str(out)],
                   check=True, capture_output=True)  # fmt: skip
    return read_predictions(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared/data/hw9like")
    p.add_argument("--script", default="train_best.sh")
    p.add_argument("--checkpoint", type=Path, default=REPO / "checkpoints/best.pth")
    args = p.parse_args()
    d = args.data_dir
    train, val_x = load_images(d / "trainX.npy"), load_images(d / "valX.npy")
    val_y = load_labels(d / "valY.npy", len(val_x))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        again = tmp / "again.pth"
        t0 = time.monotonic()
        subprocess.run(["bash", str(REPO / args.script), str(d / "trainX.npy"), str(again)],
                       check=True, capture_output=True)  # fmt: skip
        minutes = (time.monotonic() - t0) / 60
        first, second = load_checkpoint(args.checkpoint)["model"], load_checkpoint(again)["model"]
        identical = first.keys() == second.keys() and all(
            torch.equal(first[k], second[k]) for k in first
        )
        pred = [predictions(c, d / "trainX.npy", tmp) for c in (args.checkpoint, again)]
        val = []
        for c in (args.checkpoint, again):
            model, recipe = load_model(c)
            labels = cluster_codes(embed(model, val_x), recipe, context=embed(model, train))
            val.append(scores(val_y, labels)["accuracy"])
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print("| | committed checkpoint | trained again |\n|---|---|---|")
    print(f"| val accuracy | {val[0]:.3f} | {val[1]:.3f} |")
    print(f"| training wall time | | {minutes:.1f} min |")
    agree = cluster_accuracy(pred[0], pred[1])
    print(f"\nWeights bit-identical: {'yes' if identical else 'no'}. trainX predictions of "
          f"`hw9_best.sh` agreeing (clusters matched): {agree:.4f}.")  # fmt: skip


if __name__ == "__main__":
    main()
