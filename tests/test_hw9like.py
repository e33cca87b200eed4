"""Integration on the real stand-in data in ../shared/data/hw9like (skipped where absent)."""

import os
import subprocess

import numpy as np
import pytest
from conftest import REPO, SHARED_DATA, TINY_POOLED

from aecluster.data import load_images, load_labels
from aecluster.predict import read_predictions

HW9 = SHARED_DATA / "hw9like"
pytestmark = pytest.mark.skipif(not (HW9 / "trainX.npy").exists(), reason="no ../shared/data")


def test_real_files_load_with_the_documented_shapes():
    train = load_images(HW9 / "trainX.npy")
    val = load_images(HW9 / "valX.npy")
    assert train.shape == (8500, 32, 32, 3) and val.shape == (500, 32, 32, 3)
    assert isinstance(train, np.memmap)  # memory-mapped, not read into RAM
    assert set(load_labels(HW9 / "valY.npy", 500)) == {0, 1}


@pytest.mark.parametrize("name", ["baseline", "improved", "best"])
def test_committed_checkpoint_predicts_real_images(tmp_path, name):
    ckpt = REPO / "checkpoints" / f"{name}.pth"
    if not ckpt.exists():
        pytest.skip(f"{ckpt} not committed")
    subset = tmp_path / "trainX.npy"
    np.save(subset, np.load(HW9 / "trainX.npy", mmap_mode="r")[:600])
    pred = tmp_path / "pred.csv"
    r = subprocess.run(["bash", str(REPO / "hw9_best.sh"), str(subset), str(ckpt), str(pred)],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr
    labels = read_predictions(pred)
    assert labels.shape == (600,) and set(labels) == {0, 1}


def test_train_script_runs_on_real_images(tmp_path):
    subset = tmp_path / "trainX.npy"
    np.save(subset, np.load(HW9 / "trainX.npy", mmap_mode="r")[:256])
    env_args = " ".join(f"--set {s}" for s in [*TINY_POOLED, "train.epochs=1", "finetune.epochs=0"])
    env_args += " --quiet"
    r = subprocess.run(["bash", str(REPO / "train_best.sh"), str(subset), str(tmp_path / "m.pth")],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "AECLUSTER_TRAIN_ARGS": env_args})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.pth").exists()
