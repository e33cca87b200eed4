import numpy as np
import pytest
import torch
from conftest import two_kinds
from sklearn.datasets import make_blobs

from aecluster.checkpoint import load_checkpoint
from aecluster.errors import InputError
from aecluster.recipes import apply_overrides
from aecluster.runs import epoch_checkpoints, read_metrics
from aecluster.selection import choose_checkpoint, partition_stability
from aecluster.training import train


def test_stability_is_high_for_real_clusters_and_low_for_noise():
    blobs, _ = make_blobs(600, n_features=8, centers=3, cluster_std=0.5, random_state=0)
    noise = np.random.default_rng(0).normal(size=(600, 8))
    assert partition_stability(blobs, 3, resamples=3) > 0.95
    assert partition_stability(noise, 3, resamples=3) < 0.8
    assert partition_stability(blobs, 3, resamples=3) == partition_stability(blobs, 3, resamples=3)


def test_stability_refuses_too_few_codes():
    with pytest.raises(InputError, match="too few"):
        partition_stability(np.zeros((5, 4)), 3)


def test_selectors_pick_the_last_or_the_most_stable_checkpoint():
    rows = [{"epoch": 2, "stability": 0.9}, {"epoch": 4, "stability": 0.5}]
    assert choose_checkpoint(rows, {"checkpoint": "last"}) == 4
    assert choose_checkpoint(rows, {"checkpoint": "stability"}) == 2
    with pytest.raises(InputError, match="select.checkpoint must be one of"):
        choose_checkpoint(rows, {"checkpoint": "val"})


def test_training_saves_the_most_stable_checkpoint_as_final(tmp_path, tiny_recipe):
    images, _ = two_kinds()
    recipe = apply_overrides(tiny_recipe, ["train.epochs=3", 'select.checkpoint="stability"'])
    summary = train(images, recipe, tmp_path / "m.pth", progress=False)
    rows = read_metrics(tmp_path / "m.pth.run")
    assert all(0.0 <= r["stability"] <= 1.0 + 1e-9 for r in rows)
    best = max(rows, key=lambda r: r["stability"])["epoch"]
    assert summary["selected_epoch"] == best and summary["epochs"] == 3
    chosen = dict(epoch_checkpoints(tmp_path / "m.pth.run"))[best]
    final, picked = load_checkpoint(tmp_path / "m.pth")["model"], load_checkpoint(chosen)["model"]
    assert all(torch.equal(final[k], picked[k]) for k in final)
