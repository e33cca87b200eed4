import json

import numpy as np
import pytest
import torch
from conftest import two_kinds

from aecluster import device as device_module
from aecluster import training
from aecluster.checkpoint import load_checkpoint, load_model
from aecluster.errors import InputError
from aecluster.metrics import scores
from aecluster.models import build_model
from aecluster.objective import Objective
from aecluster.optim import LR_SCHEDULES
from aecluster.predict import predict
from aecluster.recipes import apply_overrides, load_recipe
from aecluster.runs import epoch_checkpoints, read_metrics
from aecluster.training import Validation, train


def _weights(path):
    return load_checkpoint(path)["model"]


def test_training_writes_checkpoints_metrics_and_a_usable_model(tmp_path, tiny_recipe):
    images, y = two_kinds()
    out = tmp_path / "m.pth"
    summary = train(images, tiny_recipe, out, val=Validation(images[:40], y[:40]), progress=False)
    assert summary["epochs"] == 2 and not summary["stopped_by_budget"]
    assert [e for e, _ in epoch_checkpoints(tmp_path / "m.pth.run")] == [2]  # the rest pruned
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


EMULATED_BF16 = "ignore:train.precision = 'bf16' on a cpu without bf16:UserWarning"


@pytest.mark.filterwarnings(EMULATED_BF16)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_seed_gives_bit_identical_checkpoints(tmp_path, tiny_recipe, precision):
    images, _ = two_kinds()
    recipe = apply_overrides(tiny_recipe, [f'train.precision="{precision}"'])
    train(images, recipe, tmp_path / "a.pth", progress=False)
    train(images, recipe, tmp_path / "b.pth", progress=False)
    a, b = _weights(tmp_path / "a.pth"), _weights(tmp_path / "b.pth")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_to_the_same_result(tmp_path, tiny_recipe, monkeypatch):
    images, _ = two_kinds()
    recipe = apply_overrides(tiny_recipe, ["train.epochs=3"])
    train(images, recipe, tmp_path / "full.pth", progress=False)
    part = tmp_path / "part.pth"

    def interrupted(*args):  # Ctrl-C after the first epoch
        raise KeyboardInterrupt

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(training, "plan", interrupted)
        train(images, recipe, part, progress=False)
    assert [e for e, _ in epoch_checkpoints(tmp_path / "part.pth.run")] == [1]
    summary = train(images, recipe, part, progress=False)
    assert summary["epochs"] == 3
    a, b = _weights(tmp_path / "full.pth"), _weights(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = json.loads((tmp_path / "part.pth.run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert rows["epoch"] == 3


@pytest.mark.parametrize(
    "extra",
    [
        ["loss.rotation=1.0"],
        ["loss.contrastive=1.0"],
        ["augment={noise={std=0.1}}"],
        ["model.params={widths=[8, 16], bottleneck=4, variational=true}", "loss.kl=0.01"],
        ['train.optimizer="sgd"', "train.lr=0.01"],
        ['train.optimizer="adamw"', "train.weight_decay=0.05"],
        ["train.channels_last=true"],
        ['train.lr_schedule="cosine"'],
        ['train.precision="bf16"', "train.channels_last=true", "loss.contrastive=1.0"],
        [
            "model.params={widths=[8,16],pool_latent=true}",
            "loss.contrastive=1.0",
            "crops.count=2",
            "crops.size=8",
        ],
    ],
)
@pytest.mark.filterwarnings(EMULATED_BF16)
def test_each_objective_option_trains(tmp_path, tiny_recipe, extra):
    images, _ = two_kinds(64)
    recipe = apply_overrides(tiny_recipe, ["train.epochs=1", *extra])
    summary = train(images, recipe, tmp_path / "m.pth", progress=False)
    assert np.isfinite(summary["loss"])


def test_resume_refuses_another_recipe_epoch_count_or_images(tmp_path, tiny_recipe):
    images, _ = two_kinds()
    train(images, tiny_recipe, tmp_path / "m.pth", progress=False)
    with pytest.raises(InputError, match="another recipe .train.lr = 0.003 there, 0.1 here"):
        train(images, apply_overrides(tiny_recipe, ["train.lr=0.1"]), tmp_path / "m.pth",
              progress=False)  # fmt: skip
    longer = apply_overrides(tiny_recipe, ["train.epochs=3"])
    with pytest.raises(InputError, match="train.epochs = 2 there, 3 here"):
        train(images, longer, tmp_path / "m.pth", progress=False)
    with pytest.raises(InputError, match="a run on other images"):
        train(two_kinds(seed=1)[0], tiny_recipe, tmp_path / "m.pth", progress=False)
    assert [r["epoch"] for r in read_metrics(tmp_path / "m.metrics.jsonl")] == [1, 2]


def test_cosine_schedule_decays_from_lr_towards_zero(tmp_path, tiny_recipe):
    cosine = LR_SCHEDULES["cosine"]
    factors = [cosine(e, 4) for e in range(4)]
    assert factors[0] == 1.0 and factors == sorted(factors, reverse=True) and factors[-1] > 0
    assert factors[2] == pytest.approx(0.5)
    images, _ = two_kinds(64)
    recipe = apply_overrides(tiny_recipe, ['train.lr_schedule="cosine"', "train.epochs=2"])
    train(images, recipe, tmp_path / "m.pth", progress=False)
    last = load_checkpoint(tmp_path / "m.pth.run" / "epoch_0002.pth")
    assert last["optimizer"]["param_groups"][0]["lr"] == pytest.approx(3e-3 * cosine(1, 2))
    with pytest.raises(InputError, match="lr_schedule"):
        train(images, apply_overrides(recipe, ['train.lr_schedule="step"']), tmp_path / "x.pth",
              progress=False)  # fmt: skip


def test_contrastive_objective_reconstructs_its_first_view(tiny_recipe):
    recipe = apply_overrides(tiny_recipe, ["loss.contrastive=1.0"])
    objective = Objective(build_model("conv", widths=[8, 16], bottleneck=8), recipe)
    x = torch.rand(8, 3, 32, 32) * 2 - 1
    terms = objective(x, torch.Generator().manual_seed(0))
    view = objective.views(x, torch.Generator().manual_seed(0))
    recon = objective.model(view).recon
    assert terms["reconstruction"].item() == pytest.approx(((recon - view) ** 2).mean().item())
    assert {"reconstruction", "contrastive", "loss"} == set(terms)


def test_a_reconstruct_share_decodes_part_of_the_batch_and_encodes_all(tiny_recipe):
    recipe = apply_overrides(tiny_recipe, ["loss.contrastive=1.0", "loss.reconstruct_share=0.25"])
    objective = Objective(build_model("conv", widths=[8, 16], pool_latent=True), recipe)
    decoded, encoded = [], []
    objective.model.decoder.register_forward_hook(lambda m, i, o: decoded.append(len(o)))
    objective.model.encoder.register_forward_hook(lambda m, i, o: encoded.append(len(o)))
    terms = objective(torch.rand(16, 3, 32, 32) * 2 - 1, torch.Generator().manual_seed(0))
    assert decoded == [4] and encoded == [4, 12, 16]  # 4 reconstructed + 12, then view 2
    assert torch.isfinite(terms["loss"])


def test_multi_crop_adds_small_views_and_needs_a_pooled_latent(tiny_recipe):
    recipe = apply_overrides(tiny_recipe, ["loss.contrastive=1.0", "crops.count=3"])
    pooled = build_model("conv", widths=[8, 16], pool_latent=True)
    objective = Objective(pooled, recipe)
    x = torch.rand(8, 3, 32, 32) * 2 - 1
    shapes = []
    objective.model.encoder.register_forward_hook(lambda m, i, o: shapes.append(i[0].shape))
    terms = objective(x, torch.Generator().manual_seed(0))
    # the full view (reconstructed), the second view, then 3 small crops of each image at once
    assert [tuple(s) for s in shapes] == [(8, 3, 32, 32), (8, 3, 32, 32), (24, 3, 16, 16)]
    assert torch.isfinite(terms["loss"])
    with pytest.raises(InputError, match="crops.count needs a model whose latent code is pooled"):
        Objective(build_model("conv", widths=[8, 16], bottleneck=8), recipe)
    with pytest.raises(InputError, match=r"crops.scale = \[0.5, 0.2\]: expected \[low, high\]"):
        apply_overrides(recipe, ["crops.scale=[0.5, 0.2]"])


def test_views_at_their_own_size_are_encoded_and_reconstructed_at_it(tiny_recipe):
    recipe = apply_overrides(tiny_recipe, ["loss.contrastive=1.0", "views={crop={size=16}}"])
    objective = Objective(build_model("conv", widths=[8, 16], pool_latent=True), recipe)
    shapes = []
    objective.model.encoder.register_forward_hook(lambda m, i, o: shapes.append(i[0].shape))
    objective.model.decoder.register_forward_hook(lambda m, i, o: shapes.append(o.shape))
    terms = objective(torch.rand(8, 3, 32, 32) * 2 - 1, torch.Generator().manual_seed(0))
    assert [tuple(s[-2:]) for s in shapes] == [(16, 16)] * 3
    assert torch.isfinite(terms["loss"])
    odd = apply_overrides(recipe, ["views={crop={size=15}}"])
    with pytest.raises(InputError, match=r"views.crop.size = 15: the model cannot reconstruct"):
        Objective(build_model("conv", widths=[8, 16], pool_latent=True), odd)
    with pytest.raises(InputError, match=r"views.crop.size = 16: the model cannot reconstruct"):
        Objective(build_model("conv", widths=[8, 16], bottleneck=8), recipe)


FINETUNE = [
    "cluster.reduce=[]",
    "cluster.method={name='scan',n_heads=2,steps=15,self_label_epochs=2,n_neighbors=5}",
    "finetune.epochs=2",
    "finetune.lr=1e-3",
]


def test_finetune_stores_a_trained_head_that_clusters_new_images(tmp_path, tiny_recipe):
    images, y = two_kinds(128)
    recipe = apply_overrides(tiny_recipe, FINETUNE)
    train(images[:96], recipe, tmp_path / "a.pth", progress=False)
    model, saved = load_model(tmp_path / "a.pth")
    head = saved["cluster"]["method"]
    assert head["name"] == "head" and np.shape(head["weight"]) == (2, model.latent_dim)
    assert saved["train"] == recipe["train"]
    labels = predict(model, saved, images[96:])  # images it never saw
    assert scores(y[96:], labels)["accuracy"] >= 0.9
    # fine-tuning changed the encoder: the weights differ from the last epoch's
    last = load_checkpoint(tmp_path / "a.pth.run" / "epoch_0002.pth")["model"]
    assert not all(torch.equal(last[k], model.state_dict()[k]) for k in last)
    train(images[:96], recipe, tmp_path / "b.pth", progress=False)
    assert load_checkpoint(tmp_path / "b.pth")["recipe"] == saved
    a, b = _weights(tmp_path / "a.pth"), _weights(tmp_path / "b.pth")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_finished_run_is_clustered_again_another_way_without_training_again(
    tmp_path, tiny_recipe
):
    images, _ = two_kinds(96)
    train(images, apply_overrides(tiny_recipe, FINETUNE), tmp_path / "a.pth", progress=False)
    last = tmp_path / "a.pth.run" / "epoch_0002.pth"
    written = last.stat().st_mtime_ns
    other = "cluster.method={name='scan',n_heads=3,steps=10,self_label_epochs=0,n_neighbors=4}"
    summary = train(images, apply_overrides(tiny_recipe, [*FINETUNE, other]), tmp_path / "a.pth",
                    progress=False)  # fmt: skip
    # resumed after its last epoch, which it did not write again: only fine-tuning ran
    assert summary["epochs"] == 2 and last.stat().st_mtime_ns == written
    assert [r["epoch"] for r in read_metrics(tmp_path / "a.metrics.jsonl")] == [1, 2]


def test_finetuning_reconstructs_the_recipes_share_of_each_batch(tiny_recipe):
    from aecluster.finetune import scan_finetune

    images, _ = two_kinds(64)
    recipe = apply_overrides(tiny_recipe, [*FINETUNE, "finetune.epochs=1", "train.batch_size=32",
                                           "loss.reconstruct_share=0.25"])  # fmt: skip
    model = build_model("conv", widths=[8, 16], pool_latent=True)
    decoded, encoded = [], []
    model.decoder.register_forward_hook(lambda m, i, o: decoded.append(len(o)))
    model.encoder.register_forward_hook(lambda m, i, o: encoded.append(len(o)))
    head, finished = scan_finetune(model, images, recipe, progress=False)
    assert finished == 1 and head["name"] == "head"
    # per batch of 32: the anchors' 8 reconstructed + 24 encoded, then their neighbours' 32
    assert decoded == [8, 8]
    assert encoded[-6:] == [8, 24, 32] * 2


def test_a_trained_head_refuses_what_it_cannot_do(tmp_path, tiny_recipe):
    images, _ = two_kinds(64)
    recipe = apply_overrides(tiny_recipe, FINETUNE)
    train(images, recipe, tmp_path / "m.pth", progress=False)
    model, saved = load_model(tmp_path / "m.pth")
    with pytest.raises(InputError, match="makes 2 clusters, not 3"):
        predict(model, saved, images, n_clusters=3)
    reduced = apply_overrides(saved, ["cluster.reduce=[{name='pca',n_components=4}]"])
    with pytest.raises(InputError, match="cluster.reduce"):
        predict(model, reduced, images)
    other = apply_overrides(saved, ["cluster.method={name='kmeans'}"])
    assert set(predict(model, other, images)) <= {0, 1}
    with pytest.raises(InputError, match="finetune needs"):
        train(images, apply_overrides(tiny_recipe, ["finetune.epochs=1"]), tmp_path / "x.pth",
              progress=False)  # fmt: skip


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_epoch(
    tmp_path, tiny_recipe, monkeypatch
):
    from aecluster.seeding import TrainingDiverged

    images, _ = two_kinds(64)
    recipe = apply_overrides(tiny_recipe, ["train.epochs=3", "train.checkpoint_every=3"])
    forward, calls = Objective.forward, [0]

    def diverging(self, x, g):
        calls[0] += 1
        terms = forward(self, x, g)
        if calls[0] > 2:  # the second epoch's first batch (2 batches per epoch)
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(Objective, "forward", diverging)
    with pytest.raises(TrainingDiverged, match="diverged in epoch 2: the loss is nan"):
        train(images, recipe, tmp_path / "m.pth", progress=False)
    assert not (tmp_path / "m.pth").exists()
    assert [e for e, _ in epoch_checkpoints(tmp_path / "m.pth.run")] == [1]
    weights = load_checkpoint(tmp_path / "m.pth.run" / "epoch_0001.pth")["model"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_api_images_are_validated_not_wrapped(tmp_path, tiny_recipe):
    from aecluster.predict import embed

    images, _ = two_kinds(16)
    with pytest.raises(InputError, match="values range over"):
        train(images.astype(np.int64) + 200, tiny_recipe, tmp_path / "m.pth", progress=False)
    assert not (tmp_path / "m.pth.run").exists()
    model = build_model("conv", widths=[8, 16], bottleneck=8)
    as_float = embed(model, images.astype(np.float32) / 255)
    assert np.allclose(as_float, embed(model, images), atol=1e-5)
    with pytest.raises(InputError, match="values range over"):
        embed(model, images.astype(np.int64) * 2)


def test_checkpoints_are_pruned_to_what_the_recipe_needs_unless_kept(tmp_path, tiny_recipe):
    images, _ = two_kinds(64)
    recipe = apply_overrides(tiny_recipe, ["train.epochs=4", 'select.checkpoint="stability"'])
    summary = train(images, recipe, tmp_path / "m.pth", progress=False)
    kept = [e for e, _ in epoch_checkpoints(tmp_path / "m.pth.run")]
    assert kept == sorted({summary["selected_epoch"], 4})
    assert [r["epoch"] for r in read_metrics(tmp_path / "m.pth.run")] == [1, 2, 3, 4]
    train(images, recipe, tmp_path / "all.pth", progress=False, keep_checkpoints=True)
    assert [e for e, _ in epoch_checkpoints(tmp_path / "all.pth.run")] == [1, 2, 3, 4]
    a, b = _weights(tmp_path / "m.pth"), _weights(tmp_path / "all.pth")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_auto_precision_is_bf16_only_where_the_hardware_has_it(monkeypatch):
    cpu = torch.device("cpu")
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(device_module, "native_bf16", lambda d, native=native: native)
        assert device_module.resolve_precision(cpu, "auto") == expected
        assert device_module.resolve_precision(cpu, "fp32") == "fp32"
    with pytest.warns(UserWarning, match="emulated"):
        assert device_module.resolve_precision(cpu, "bf16") == "bf16"
    for name in ("baseline", "improved", "best"):
        assert load_recipe(name)["train"]["precision"] == "auto"


def _running_stats(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k}


def test_recalibrated_batchnorm_holds_the_statistics_of_the_clean_images():
    images, _ = two_kinds(64)
    model = build_model("conv", widths=[8, 16], batchnorm=True, pool_latent=True)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    first.register_forward_hook(lambda m, i, o: seen.append(i[0].detach()))
    first.running_mean.fill_(5.0)  # stale, as augmented training views leave it
    training.recalibrate_batchnorm(model, images, 64, torch.contiguous_format)
    x = seen[-1]  # one batch of all 64 images
    assert torch.allclose(first.running_mean, x.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(first.running_var, x.var((0, 2, 3)), atol=1e-4)
    assert not model.training and first.momentum == 0.1
    whole = _running_stats(model)
    # in batches of 16: the same means (the average of equal batches' means), whatever came before
    first.running_mean.fill_(-5.0)
    training.recalibrate_batchnorm(model, images, 16, torch.contiguous_format)
    means = {k: v for k, v in _running_stats(model).items() if k.endswith("running_mean")}
    assert all(torch.allclose(whole[k], v, atol=1e-5) for k, v in means.items())


def test_a_restored_checkpoint_is_laid_out_and_recalibrated_as_the_recipe_asks(tiny_recipe):
    images, _ = two_kinds(64)
    model = build_model("conv", widths=[8, 16], batchnorm=True, pool_latent=True)
    asked = apply_overrides(
        tiny_recipe, ["train.channels_last=true", "train.recalibrate_batchnorm=true"]
    )
    for name, stat in model.named_buffers():
        if "running" in name:
            stat.fill_(5.0)  # stale, as an epoch checkpoint holds them
    assert training.restore_as_trained(model, images, asked) == torch.channels_last
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    restored = _running_stats(model)
    training.recalibrate_batchnorm(model, images, 64, torch.channels_last)
    assert all(torch.allclose(restored[k], v, atol=1e-5) for k, v in _running_stats(model).items())
    assert not any(torch.all(v == 5.0) for v in restored.values())
    # a recipe that does not ask keeps the statistics and the layout it was given
    plain = apply_overrides(
        tiny_recipe, ["train.channels_last=false", "train.recalibrate_batchnorm=false"]
    )
    fresh = build_model("conv", widths=[8, 16], batchnorm=True, pool_latent=True)
    kept = _running_stats(fresh)
    assert training.restore_as_trained(fresh, images, plain) == torch.contiguous_format
    assert all(torch.equal(kept[k], v) for k, v in _running_stats(fresh).items())


def test_training_recalibrates_batchnorm_and_a_run_without_it_resumes_with_it(
    tmp_path, tiny_recipe
):
    images, _ = two_kinds(96)
    pooled = "model.params={widths=[8,16],batchnorm=true,pool_latent=true}"
    plain = apply_overrides(tiny_recipe, [*FINETUNE, pooled])
    train(images, plain, tmp_path / "m.pth", progress=False)
    before = _running_stats(load_model(tmp_path / "m.pth")[0])
    # the epochs are kept: the resumed run only fine-tunes and recalibrates
    recalibrated = apply_overrides(plain, ["train.recalibrate_batchnorm=true"])
    summary = train(images, recalibrated, tmp_path / "m.pth", progress=False)
    assert summary["epochs"] == 2 and summary["finetune_epochs"] == 2
    model, saved = load_model(tmp_path / "m.pth")
    stats = _running_stats(model)
    assert saved["train"]["recalibrate_batchnorm"]
    training.recalibrate_batchnorm(model, images, 32, torch.contiguous_format)
    after = _running_stats(model)
    assert all(torch.allclose(stats[k], after[k], atol=1e-5) for k in stats)
    assert not all(torch.allclose(before[k], stats[k], atol=1e-5) for k in stats)
