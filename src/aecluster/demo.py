"""The built-in demo: scikit-learn's handwritten digits (shipped with it, no download)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from aecluster.checkpoint import load_model
from aecluster.data import as_images
from aecluster.files import check_output_folder, check_output_path, new_folder
from aecluster.metrics import scores
from aecluster.predict import predict, write_predictions
from aecluster.recipes import load_recipe
from aecluster.training import train


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """1797 digits as uint8 (N, 8, 8, 3) images (resized to 32x32 on the way into the model)."""
    digits = load_digits()
    gray = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    return as_images(gray, source="sklearn digits"), digits.target


def run_demo(out: Path, progress: bool = True, overwrite: bool = False) -> dict:
    """Train the demo recipe on the digits into `out`, cluster them and score the result.

    An earlier demo's checkpoint and predictions in `out` are replaced only with `overwrite`.
    """
    check_output_folder(out)
    checkpoint, predictions = out / "demo.pth", out / "predictions.csv"
    if out.is_dir():
        for path in (checkpoint, predictions):
            check_output_path(path, overwrite=overwrite)
    images, truth = digits_images()
    t0 = time.monotonic()
    with new_folder(out):
        train(images, load_recipe("demo"), checkpoint, progress=progress)
        model, recipe = load_model(checkpoint)
        labels = predict(model, recipe, images, progress=progress)
        write_predictions(predictions, labels)
    result = {k: round(v, 4) for k, v in scores(truth, labels).items()}
    return {**result, "images": len(images), "clusters": 10,
            "seconds": round(time.monotonic() - t0, 1), "predictions": str(predictions),
            "checkpoint": str(checkpoint)}  # fmt: skip
