import json

import numpy as np
import pytest
import torch
from conftest import two_kinds

from aecluster.checkpoint import load_checkpoint, load_model
from aecluster.errors import InputError
from aecluster.predict import predict
from aecluster.recipes import apply_overrides
from aecluster.training import Validation, epoch_checkpoints, read_metrics, train


def _weights(path):
    return load_checkpoint(path)["model"]


def test_training_writes_checkpoints_metrics_and_a_usable_model(tmp_path, tiny_recipe):
    images, y = two_kinds()
    out = tmp_path / "m.pth"
    summary = train(images, tiny_recipe, out, val=Validation(images[:40], y[:40]), progress=False)
    assert summary["epochs"] == 2 and not summary["stopped_by_budget"]
    assert [e for e, _ in epoch_checkpoints(tmp_path / "m.pth.run")] == [1, 2]
    rows = read_metrics(tmp_path / "m.pth.run")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"loss", "recon_mse", "val_accuracy", "val_nmi", "minutes"} <= set(rows[0])
    model, recipe = load_model(out)
    assert recipe == tiny_recipe
    assert "optimizer" not in load_checkpoint(out)
    labels = predict(model, recipe, images)
    assert labels.shape == (len(images),) and set(labels) <= {0, 1}


def test_loss_goes_down(tmp_path, tiny_recipe):
    images, _ = two_kinds()
    recipe = apply_overrides(tiny_recipe, ["train.epochs=6", "train.checkpoint_every=3"])
    train(images, recipe, tmp_path / "m.pth", progress=False)
    rows = read_metrics(tmp_path / "m.pth.run")
    assert rows[-1]["loss"] < rows[0]["loss"]


def test_same_seed_gives_bit_identical_checkpoints(tmp_path, tiny_recipe):
    images, _ = two_kinds()
    train(images, tiny_recipe, tmp_path / "a.pth", progress=False)
    train(images, tiny_recipe, tmp_path / "b.pth", progress=False)
    a, b = _weights(tmp_path / "a.pth"), _weights(tmp_path / "b.pth")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_to_the_same_result(tmp_path, tiny_recipe):
    images, _ = two_kinds()
    recipe = apply_overrides(tiny_recipe, ["train.epochs=3"])
    train(images, recipe, tmp_path / "full.pth", progress=False)
    part = tmp_path / "part.pth"
    train(images, apply_overrides(recipe, []), part, progress=False, budget_minutes=1e-9)
    assert [e for e, _ in epoch_checkpoints(tmp_path / "part.pth.run")] == [1]
    summary = train(images, recipe, part, progress=False)
    assert summary["epochs"] == 3
    a, b = _weights(tmp_path / "full.pth"), _weights(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = json.loads((tmp_path / "part.pth.run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert rows["epoch"] == 3


def test_resume_refuses_another_recipe(tmp_path, tiny_recipe):
    images, _ = two_kinds()
    train(images, tiny_recipe, tmp_path / "m.pth", progress=False)
    other = apply_overrides(tiny_recipe, ["train.lr=0.1"])
    with pytest.raises(InputError, match="another recipe"):
        train(images, other, tmp_path / "m.pth", progress=False)


@pytest.mark.parametrize(
    "extra",
    [
        ["loss.rotation=1.0"],
        ["loss.contrastive=1.0"],
        ["augment={noise={std=0.1}}"],
        ["model.params={widths=[8, 16], bottleneck=4, variational=true}", "loss.kl=0.01"],
        ['train.optimizer="sgd"', "train.lr=0.01"],
        ["train.channels_last=true"],
    ],
)
def test_each_objective_option_trains(tmp_path, tiny_recipe, extra):
    images, _ = two_kinds(64)
    recipe = apply_overrides(tiny_recipe, ["train.epochs=1", *extra])
    summary = train(images, recipe, tmp_path / "m.pth", progress=False)
    assert np.isfinite(summary["loss"])


def test_a_finished_run_can_be_extended_with_more_epochs(tmp_path, tiny_recipe):
    images, _ = two_kinds()
    train(images, tiny_recipe, tmp_path / "m.pth", progress=False)
    longer = apply_overrides(tiny_recipe, ["train.epochs=3"])
    summary = train(images, longer, tmp_path / "m.pth", progress=False)
    assert summary["epochs"] == 3
    assert [r["epoch"] for r in read_metrics(tmp_path / "m.metrics.jsonl")] == [1, 2, 3]
