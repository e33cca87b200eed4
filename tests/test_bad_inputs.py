"""Every bad input we know of, at the CLI: one plain line naming the file, exit code 2, no output.

`python tests/test_bad_inputs.py` prints the table in docs/bad-inputs.md from these same cases.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY, TINY_POOLED, flip_a_weight_bit, two_kinds  # noqa: E402

from aecluster.checkpoint import FORMAT, checksum, save_checkpoint  # noqa: E402
from aecluster.cli import main  # noqa: E402
from aecluster.models import build_model  # noqa: E402
from aecluster.recipes import apply_overrides, load_recipe  # noqa: E402


@dataclass
class Case:
    what: str
    make: Callable[[Path], list[str]]  # builds files in a folder, returns the CLI arguments
    expect: str  # part of the message


def npy(folder: Path, name: str, array: np.ndarray, **kw) -> str:
    path = folder / name
    np.save(path, array, **kw)
    return str(path)


def raw(folder: Path, name: str, data: bytes) -> str:
    path = folder / name
    path.write_bytes(data)
    return str(path)


def good_checkpoint(folder: Path) -> str:
    recipe = apply_overrides(load_recipe("baseline"), TINY)
    model = build_model(recipe["model"]["name"], **recipe["model"]["params"])
    path = folder / "good.pth"
    save_checkpoint(path, {"recipe": recipe, "model": model.state_dict()})
    return str(path)


def predict(data: Callable[[Path], str], ckpt: Callable[[Path], str] = good_checkpoint,
            out: Callable[[Path], str] = lambda f: str(f / "pred.csv"), extra=()):  # fmt: skip
    return lambda f: ["predict", "--data", data(f), "--checkpoint", ckpt(f), "--out", out(f),
                      "--quiet", *extra]  # fmt: skip


def images(f: Path) -> str:
    return npy(f, "trainX.npy", two_kinds(8)[0])


def with_array(array: np.ndarray, **kw) -> Callable[[Path], list[str]]:
    return predict(lambda f: npy(f, "bad.npy", array, **kw))


def train(*sets: str, recipe: str = "baseline") -> Callable[[Path], list[str]]:
    return lambda f: ["train", "--data", images(f), "--out", str(f / "m.pth"), "--quiet",
                      "--recipe", recipe, *[a for s in sets for a in ("--set", s)]]  # fmt: skip


def evaluate_labels(labels: np.ndarray) -> Callable[[Path], list[str]]:
    return lambda f: ["evaluate", "--checkpoint", good_checkpoint(f), "--val-x", images(f),
                      "--val-y", npy(f, "valY.npy", labels)]  # fmt: skip


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def evil_checkpoint(f: Path) -> str:
    path = f / "evil.pth"
    torch.save({"format": "aecluster-checkpoint-v1", "payload": Evil()}, path)
    return str(path)


def other_architecture(f: Path) -> str:
    recipe = apply_overrides(load_recipe("baseline"), TINY)
    path = f / "other.pth"
    save_checkpoint(path, {"recipe": recipe, "model": build_model("baseline").state_dict()})
    return str(path)


def existing_output(f: Path) -> str:
    (f / "pred.csv").write_text("precious\n")
    return str(f / "pred.csv")


def bad_recipe(text: str) -> Callable[[Path], list[str]]:
    def make(f: Path) -> list[str]:
        (f / "r.toml").write_text(text)
        return ["train", "--data", images(f), "--out", str(f / "m.pth"), "--recipe",
                str(f / "r.toml")]  # fmt: skip

    return make


def fifo(f: Path, name: str) -> str:
    os.mkfifo(f / name)
    return str(f / name)


def symlink_loop(f: Path, name: str) -> str:
    (f / name).symlink_to(f / "loop2")
    (f / "loop2").symlink_to(f / name)
    return str(f / name)


def npy_header(name: str, header: str, payload: int = 0) -> Callable[[Path], str]:
    """An .npy file with a hand-written header, e.g. a negative or impossible shape."""

    def make(f: Path) -> str:
        text = header + " " * (63 - len(header) % 64) + "\n"
        data = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()
        return raw(f, name, data + bytes(payload))

    return make


def checkpoint_with(change: Callable[[dict], None], rehash: bool = True):
    """A tiny checkpoint whose state is changed by `change`, re-checksummed unless told not to."""

    def make(f: Path) -> str:
        recipe = apply_overrides(load_recipe("baseline"), TINY)
        model = build_model(recipe["model"]["name"], **recipe["model"]["params"])
        state = {"format": FORMAT, "recipe": recipe, "model": model.state_dict()}
        change(state)
        if rehash:
            state["checksum"] = checksum(state)
        torch.save(state, f / "c.pth")
        return str(f / "c.pth")

    return make


def bit_flipped(f: Path) -> str:
    path = Path(good_checkpoint(f))
    flip_a_weight_bit(path)
    return str(path)


def first_tensor(state: dict) -> str:
    return next(iter(state["model"]))


def report(f: Path, *extra: str, out: str | None = None, data: str | None = None) -> list[str]:
    folder = f / "data"
    folder.mkdir(exist_ok=True)
    np.save(folder / "trainX.npy", two_kinds(8)[0])
    return ["report", "--checkpoint", good_checkpoint(f), "--data-dir", data or str(folder),
            "--out", out or str(f / "report"), *extra]  # fmt: skip


def planted_figure(f: Path) -> str:
    """A report folder whose embedding.png is a symlink to the checkpoint."""
    (f / "report").mkdir()
    (f / "report" / "embedding.png").symlink_to(good_checkpoint(f))
    return str(f / "report")


def alias(f: Path, of: str) -> str:
    (f / "alias.csv").symlink_to(of)
    return str(f / "alias.csv")


U8 = np.uint8
# fmt: off
CASES = [
    Case("images file missing", predict(lambda f: str(f / "nope.npy")), "nope.npy: file not found"),
    Case("images folder holding no image files", predict(lambda f: str(f)), "holds no image files"),
    Case("empty file", predict(lambda f: raw(f, "e.npy", b"")), "not an .npy file"),
    Case("text file named .npy", predict(lambda f: raw(f, "t.npy", b"1,2,3\n")), "not an .npy"),
    Case(
        "PNG bytes named .npy",
        predict(lambda f: raw(f, "p.npy", b"\x89PNG\r\n\x1a\n" * 9)),
        "not an .npy",
    ),
    Case(
        "truncated .npy",
        predict(lambda f: raw(f, "cut.npy", Path(images(f)).read_bytes()[:900])),
        "truncated or corrupt",
    ),
    Case(
        ".npy header only",
        predict(lambda f: raw(f, "h.npy", Path(images(f)).read_bytes()[:128])),
        "truncated or corrupt",
    ),
    Case(
        "object (pickled) array",
        with_array(np.array([{}, {}], dtype=object), allow_pickle=True),
        "refusing to unpickle",
    ),
    Case("rank-2 array", with_array(np.zeros((32, 96), U8)), "rank 2"),
    Case("rank-5 array", with_array(np.zeros((2, 2, 32, 32, 3), U8)), "rank 5"),
    Case("4 channels (RGBA)", with_array(np.zeros((2, 32, 32, 4), U8)), "channel axis"),
    Case("2 channels, channels first", with_array(np.zeros((2, 2, 32, 32), U8)), "channel axis"),
    Case("images smaller than 8x8", with_array(np.zeros((2, 4, 4, 3), U8)), "at least 8x8"),
    Case("no images (N = 0)", with_array(np.zeros((0, 32, 32, 3), U8)), "holds no images"),
    Case("NaN pixels", with_array(np.full((2, 32, 32, 3), np.nan, np.float32)), "NaN"),
    Case("infinite pixels", with_array(np.full((2, 32, 32, 3), np.inf)), "NaN or infinite"),
    Case("floats above 255", with_array(np.full((2, 32, 32, 3), 256.0)), "expected [0, 1]"),
    Case("negative pixels", with_array(np.full((2, 32, 32, 3), -3, np.int16)), "range"),
    Case("integers above 255", with_array(np.full((2, 32, 32, 3), 1000, np.int32)), "range"),
    Case("boolean array", with_array(np.zeros((2, 32, 32, 3), bool)), "not an image type"),
    Case("complex array", with_array(np.zeros((2, 32, 32, 3), complex)), "not an image type"),
    Case("string array", with_array(np.full((2, 32, 32, 3), "a")), "not an image type"),
    Case(
        "structured dtype",
        with_array(np.zeros((2, 32, 32, 3), [("r", U8), ("g", U8)])),
        "not an image type",
    ),
    Case(
        "fewer images than clusters",
        with_array(np.zeros((1, 32, 32, 3), U8)),
        "1 images cannot form 2 clusters",
    ),
    Case("--n-clusters 1", predict(images, extra=["--n-clusters", "1"]), "expected an integer in [2, 10000]"),
    Case(
        "checkpoint missing", predict(images, lambda f: str(f / "no.pth")), "checkpoint not found"
    ),
    Case("checkpoint is a directory", predict(images, lambda f: str(f)), "is a directory"),
    Case(
        "truncated checkpoint",
        predict(images, lambda f: raw(f, "cut.pth", Path(good_checkpoint(f)).read_bytes()[:300])),
        "truncated, corrupt",
    ),
    Case(
        "random bytes as checkpoint",
        predict(images, lambda f: raw(f, "r.pth", bytes(range(256)))),
        "not a PyTorch checkpoint",
    ),
    Case(
        "JSON file as checkpoint",
        predict(images, lambda f: raw(f, "j.pth", b'{"a": 1}')),
        "not a PyTorch checkpoint",
    ),
    Case(
        "plain pickle as checkpoint",
        predict(images, lambda f: raw(f, "p.pth", pickle.dumps({"model": 1}))),
        "not a PyTorch checkpoint",
    ),
    Case(
        "foreign PyTorch file (bare state_dict)",
        predict(
            images, lambda f: (torch.save({"w": torch.ones(1)}, f / "s.pth"), str(f / "s.pth"))[1]
        ),
        "not an aecluster checkpoint",
    ),
    Case(
        "checkpoint whose pickle carries code", predict(images, evil_checkpoint), "refused to load"
    ),
    Case(
        "weights of another architecture", predict(images, other_architecture), "do not fit model"
    ),
    Case(
        "output folder missing",
        predict(images, out=lambda f: str(f / "no" / "p.csv")),
        "does not exist",
    ),
    Case(
        "output folder is a file",
        predict(images, out=lambda f: raw(f, "file", b"x") + "/p.csv"),
        "is a file, not a folder",
    ),
    Case("output path is a directory", predict(images, out=lambda f: str(f)), "is a directory"),
    Case(
        "output file exists (no --overwrite)",
        predict(images, out=existing_output),
        "already exists",
    ),
    Case("labels of the wrong length", evaluate_labels(np.zeros(3, np.int64)), "3 labels for 8"),
    Case("float labels", evaluate_labels(np.zeros(8)), "expected integer labels"),
    Case("2-D labels", evaluate_labels(np.zeros((8, 1), np.int64)), "expected labels of shape"),
    Case("unknown recipe", train(recipe="fastest"), "unknown recipe 'fastest'"),
    Case("recipe that is not TOML", bad_recipe("epochs = = 3"), "not a valid TOML"),
    Case("recipe with an unknown key", bad_recipe("[train]\nepoch = 3\n"), "unknown key 'epoch'"),
    Case("recipe with an unknown model", bad_recipe('[model]\nname = "vit"\n'), "unknown model"),
    Case("recipe whose base is unknown", bad_recipe('base = "fastest"\n'), "unknown recipe"),
    Case("recipe that is its own base", bad_recipe('base = "r.toml"\n'), "in a cycle"),
    Case(
        "fine-tuning without SCAN to start from",
        train(*TINY, "finetune.epochs=2"),
        "finetune needs cluster.method",
    ),
    Case("unknown learning-rate schedule", train(*TINY, 'train.lr_schedule="step"'), "lr_schedule"),
    Case("best's 24 x 24 views with a model that reconstructs only 32 x 32", train(*TINY, "finetune.epochs=0", recipe="best"), "views.crop.size = 24: the model cannot reconstruct views of that size"),
    Case("views of a side the model cannot reconstruct", train(*TINY_POOLED, "views.crop={size=25}", "finetune.epochs=0", recipe="best"), "views.crop.size = 25: the model cannot reconstruct"),
    Case("an input crop of another side than the reconstruction target", train(*TINY, "augment.crop={size=16}"), "augment.crop.size = 16: the autoencoder's input must have the side of its reconstruction target (32)"),
    Case("--set without a value", train("train.epochs"), "expected section.key=value"),
    Case("--set with a bad value", train("train.epochs=three"), "train.epochs = 'three': expected an integer"),
    Case("--set with a value that is not TOML", train("train.epochs=[1"), "not valid TOML"),
    Case("unknown reduction step", train(*TINY, 'cluster.reduce=[{name="lda"}]'), "unknown step"),
    Case(
        "prediction --set of a training setting",
        predict(images, extra=("--set", "train.epochs=3")),
        "takes only cluster.* settings",
    ),
    Case(
        "prediction --set of an unknown clustering method",
        predict(images, extra=("--set", "cluster.method={name='dbscan'}")),
        "unknown step 'dbscan'",
    ),
    Case(
        "unknown checkpoint selection rule",
        train(*TINY, 'select.checkpoint="val"'),
        "select.checkpoint = 'val': expected one of 'last', 'stability'",
    ),
    # --- special files, links and unreadable paths (round 2) ---
    Case("images path is a FIFO", predict(lambda f: fifo(f, "x.npy")), "not a regular file"),
    Case("images path is a character device", predict(lambda f: "/dev/zero"), "not a regular file"),
    Case("images path is a symlink loop", predict(lambda f: symlink_loop(f, "x.npy")), "symlink loop"),
    Case("images path is a dangling symlink", predict(lambda f: (Path(f / "d.npy").symlink_to(f / "gone"), str(f / "d.npy"))[1]), "file not found"),
    Case("images path runs through a file", predict(lambda f: raw(f, "plain", b"x") + "/x.npy"), "is a file, not a folder"),
    Case("checkpoint is a FIFO", predict(images, lambda f: fifo(f, "c.pth")), "not a regular file"),
    Case("checkpoint is a symlink loop", predict(images, lambda f: symlink_loop(f, "c.pth")), "symlink loop"),
    Case("labels file is a FIFO", lambda f: ["evaluate", "--checkpoint", good_checkpoint(f), "--val-x", images(f), "--val-y", fifo(f, "y.npy")], "not a regular file"),
    Case("recipe is a directory", lambda f: ["train", "--data", images(f), "--out", str(f / "m.pth"), "--recipe", str(f)], "is a directory"),
    Case("recipe is a FIFO", lambda f: ["train", "--data", images(f), "--out", str(f / "m.pth"), "--recipe", fifo(f, "r.toml")], "not a regular file"),
    Case("missing path with a newline in its name", predict(lambda f: str(f / "a\nb.npy")), "a\\nb.npy: file not found"),
    # --- .npy headers that would hang, crash or allocate ---
    Case(".npy header with a negative shape", predict(npy_header("neg.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (-2, 32, 32, 3), }")), "negative shape"),
    Case("labels header claiming 10^11 entries", lambda f: ["evaluate", "--checkpoint", good_checkpoint(f), "--val-x", images(f), "--val-y", npy_header("y.npy", "{'descr': '<i8', 'fortran_order': False, 'shape': (100000000000,), }")(f)], "promises shape"),
    Case(".npy header promising more bytes than the file has", predict(npy_header("big.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (9, 32, 32, 3), }", 100)), "promises shape"),
    Case(".npy header whose shape is not a tuple", predict(npy_header("s.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': 'x', }")), "corrupt .npy header"),
    Case(".npy header with an unknown dtype", predict(npy_header("d.npy", "{'descr': 'zz', 'fortran_order': False, 'shape': (2,), }")), "corrupt .npy header"),
    Case(".npy header that is not a dict", predict(npy_header("n.npy", "[1, 2, 3]")), "corrupt .npy header"),
    Case(".npy header with an object dtype", predict(npy_header("o.npy", "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 16)), "refusing to unpickle"),
    Case(".npy of an unsupported format version", predict(lambda f: raw(f, "v.npy", b"\x93NUMPY\x09\x00" + bytes(200))), "unsupported .npy format version"),
    Case("string images", with_array(np.full((2, 32, 32, 3), "ab")), "not an image type"),
    Case("float images on a [-1, 1] scale", with_array(np.full((2, 32, 32, 3), -1.0)), "values range over [-1, -1]"),
    Case("int64 images above 255", with_array(np.full((2, 32, 32, 3), 256, np.int64)), "values range over"),
    Case("1x1 images", with_array(np.zeros((2, 1, 1, 3), U8)), "at least 8x8"),
    Case("2 channels, channels last", with_array(np.zeros((2, 32, 32, 2), U8)), "channel axis"),
    Case("float16 NaN pixels", with_array(np.full((2, 32, 32, 3), np.nan, np.float16)), "NaN"),
    Case("boolean labels", evaluate_labels(np.zeros(8, bool)), "expected integer labels"),
    Case("0-d labels", evaluate_labels(np.array(3)), "expected labels of shape"),
    # --- recipe values: one schema names the key and what it allows ---
    *[Case(f"--set {s}", train(*TINY, s), e) for s, e in [
        ("train.batch_size=0", "train.batch_size = 0: expected an integer in [2, 65536]"),
        ("train.batch_size=1", "train.batch_size = 1: expected an integer in [2, 65536]"),
        ("train.lr=-1", "train.lr = -1: expected a number in (0, 10]"),
        ("train.lr=1e10", "train.lr = 10000000000.0: expected a number in (0, 10]"),
        ("train.lr=nan", "train.lr = nan: expected a number"),
        ('train.epochs="ten"', "train.epochs = 'ten': expected an integer"),
        ("train.epochs=0", "train.epochs = 0: expected an integer in [1, 100000]"),
        ("train.epochs=1.5", "train.epochs = 1.5: expected an integer"),
        ("train.epochs=true", "train.epochs = True: expected an integer"),
        ("train.seed=-1", "train.seed = -1: expected an integer"),
        ('train.optimizer="lbfgs"', "train.optimizer = 'lbfgs': expected one of 'adam', 'adamw', 'sgd'"),
        ("train.momentum=2", "train.momentum = 2: expected a number in [0, 1]"),
        ('train.channels_last="yes"', "train.channels_last = 'yes': expected true or false"),
        ("train.budget_minutes=-5", "train.budget_minutes = -5"),
        ("loss.temperature=0", "loss.temperature = 0: expected a number in [0.01, 100]"),
        ("loss.contrastive=-1", "loss.contrastive = -1"),
        ("loss.rotation=inf", "loss.rotation = inf"),
        ("views={blur={}}", "unknown key 'blur'; known: crop, color, grayscale, noise"),
        ("augment={noise={std=-1}}", "augment.noise.std = -1"),
        ("views={crop={scale=[0.9,0.1]}}", "low <= high"),
        ("views={crop={scale=[0.5]}}", "views.crop.scale = [0.5]: expected a list of 2 to 2"),
        ("views={color={p='always'}}", "views.color.p = 'always'"),
        ("cluster.n_clusters=1", "cluster.n_clusters = 1: expected an integer in [2, 10000]"),
        ("cluster.n_clusters=0", "cluster.n_clusters = 0"),
        ('cluster.reduce=[{name="pca",n_components=0}]', "n_components = 0: expected an integer in [1, 4096]"),
        ('cluster.reduce="pca"', "cluster.reduce = 'pca': expected a list"),
        ('cluster.reduce=[{name="tsne",n_components=5}]', "n_components = 5: expected an integer in [1, 3]"),
        ('cluster.reduce=[{name="kernel_pca",kernel="/tmp/k"}]', "kernel = '/tmp/k': expected one of"),
        ('cluster.method={name="kmeans",n_init=0}', "n_init = 0: expected an integer in [1, 1000]"),
        ('cluster.method={name="agglomerative",memory="/tmp"}', "unknown key 'memory'; known: linkage"),
        ('cluster.method={name="agglomerative",linkage="bogus"}', "linkage = 'bogus'"),
        ('cluster.method={name="scan",threshold=2}', "threshold = 2: expected a number in [0, 1]"),
        ('cluster.method={name="head"}', "needs mean, scale, weight and bias of agreeing sizes"),
        ("cluster.method={}", "unknown step None"),
        ("cluster.method=3", "expected a table, got 3"),
        ("model.params={widths=[50000,8]}", "widths[0] = 50000: expected an integer in [1, 1024]"),
        ("model.params={widths=[8]}", "widths = [8]: expected a list of 2 to 6"),
        ("model.params={widths=[1024,1024],bottleneck=4096}", "parameters; the limit is 50,000,000"),
        ("model.params={widths=[8,16],variational=true}", "a variational model needs a bottleneck"),
        ('model.params={widths=[8,16],downsample="avg"}', "downsample = 'avg': expected one of 'maxpool', 'stride'"),
        ("finetune.epochs=-1", "finetune.epochs = -1"),
        ("select.resamples=0", "select.resamples = 0"),
        ("train=3", "expected a table, got 3"),
        ("nosuch.key=1", "recipe has no section 'nosuch'; known: model, train"),
        ("train.epochs.x=1", "train has no section 'epochs'"),
    ]],
    Case("recipe whose base is not a name", bad_recipe("base = 3\n"), "base = 3: expected a recipe name"),
    Case("recipe with a wrongly typed value", bad_recipe('[train]\nepochs = "x"\n'), "train.epochs = 'x'"),
    Case("recipe file of binary bytes", lambda f: ["train", "--data", images(f), "--out", str(f / "m.pth"), "--recipe", raw(f, "r.toml", bytes(range(256)))], "not a valid TOML"),
    Case("recipe with a section given as a value", bad_recipe("train = 3\n"), "expected a table, got 3"),
    Case("recipe whose model is a 50,000-wide network", bad_recipe('[model]\nname = "conv"\nparams = { widths = [50000, 50000] }\n'), "expected an integer in [1, 1024]"),
    # --- checkpoints ---
    Case("bit-flipped checkpoint", predict(images, bit_flipped), "does not match its checksum"),
    Case("checkpoint without a checksum", predict(images, checkpoint_with(lambda s: None, rehash=False)), "does not match its checksum"),
    Case("checkpoint missing its recipe", predict(images, checkpoint_with(lambda s: s.pop("recipe"))), "has no 'recipe' table"),
    Case("checkpoint missing its model", predict(images, checkpoint_with(lambda s: s.pop("model"))), "has no 'model' table"),
    Case("checkpoint whose recipe is a string", predict(images, checkpoint_with(lambda s: s.update(recipe="best"))), "has no 'recipe' table"),
    Case("checkpoint whose model is a list", predict(images, checkpoint_with(lambda s: s.update(model=[1, 2]))), "has no 'model' table"),
    Case("checkpoint whose model holds a number", predict(images, checkpoint_with(lambda s: s["model"].update(x=3))), "not a table of named tensors"),
    Case("checkpoint with NaN weights", predict(images, checkpoint_with(lambda s: s["model"][first_tensor(s)].fill_(float("nan")))), "NaN or infinite weights"),
    Case("checkpoint missing a tensor", predict(images, checkpoint_with(lambda s: s["model"].pop(first_tensor(s)))), "is missing"),
    Case("checkpoint with a misshapen tensor", predict(images, checkpoint_with(lambda s: s["model"].update({first_tensor(s): torch.zeros(3)}))), "has shape (3,) in the checkpoint, the model needs"),
    Case("checkpoint with an unexpected tensor", predict(images, checkpoint_with(lambda s: s["model"].update(extra=torch.zeros(1)))), "unexpected tensor 'extra'"),
    Case("checkpoint whose recipe points joblib at a folder", predict(images, checkpoint_with(lambda s: s["recipe"]["cluster"].update(method={"name": "agglomerative", "memory": "/tmp"}))), "unknown key 'memory'"),
    Case("checkpoint whose recipe makes a huge model", predict(images, checkpoint_with(lambda s: s["recipe"]["model"].update(params={"widths": [50000, 8]}))), "expected an integer in [1, 1024]"),
    Case("checkpoint whose recipe has an unknown section", predict(images, checkpoint_with(lambda s: s["recipe"].update(extra={}))), "unknown key 'extra'"),
    Case("checkpoint of an unknown format version", predict(images, checkpoint_with(lambda s: s.update(format="aecluster-checkpoint-v0"))), "not an aecluster checkpoint"),
    # --- outputs that are inputs, folders that are files, ranges ---
    Case("predict --out is the images file", lambda f: predict(images, out=lambda g: str(g / "trainX.npy"))(f) + ["--overwrite"], "is also an input"),
    Case("predict --out is the checkpoint", lambda f: predict(images, out=lambda g: str(g / "good.pth"))(f) + ["--overwrite"], "is also an input"),
    Case("predict --out is a symlink to the images", lambda f: predict(images, out=lambda g: alias(g, str(g / "trainX.npy")))(f) + ["--overwrite"], "is also an input"),
    Case("train --out is the images file", lambda f: ["train", "--data", images(f), "--out", str(f / "trainX.npy"), "--overwrite"], "is also an input"),
    Case("train --run-dir is a file", lambda f: ["train", "--data", images(f), "--out", str(f / "m.pth"), "--run-dir", raw(f, "runfile", b"x"), "--recipe", "baseline", *[a for s in TINY for a in ("--set", s)]], "exists as a file"),
    Case("train output folder missing", lambda f: ["train", "--data", images(f), "--out", str(f / "no" / "m.pth")], "does not exist"),
    Case("predict onto a full disk", predict(images, out=lambda f: "/dev/full"), "no space left on the device"),
    Case("predict --n-clusters 0", predict(images, extra=["--n-clusters", "0"]), "--n-clusters = 0: expected an integer in [2, 10000]"),
    Case("predict --n-clusters 100000", predict(images, extra=["--n-clusters", "100000"]), "expected an integer in [2, 10000]"),
    Case("evaluate --n-clusters 1", lambda f: evaluate_labels(np.zeros(8, np.int64))(f) + ["--n-clusters", "1"], "expected an integer in [2, 10000]"),
    Case("report --out is a file", lambda f: report(f, out=raw(f, "outfile", b"x")), "exists and is not a folder"),
    Case("report --data-dir is a file", lambda f: report(f, data=raw(f, "datafile", b"x")), "is not a folder"),
    Case("report --data-dir missing", lambda f: report(f, data=str(f / "nodata")), "data folder not found"),
    Case("report --indices out of range", lambda f: report(f, "--indices", "5000"), "--indices 5000: out of range; trainX has 8 images"),
    Case("report --indices negative", lambda f: report(f, "--indices", "-1"), "--indices -1: out of range"),
    Case("report onto a figure that is an input", lambda f: report(f, out=planted_figure(f)), "is also an input"),
    Case("demo --out is a file", lambda f: ["demo", "--out", raw(f, "demofile", b"x")], "exists and is not a folder"),
    Case("demo over an earlier demo's predictions", lambda f: ["demo", "--out", raw(f, "predictions.csv", b"x") and str(f)], "already exists (pass --overwrite"),
    # --- arguments that do not go together ---
    Case("evaluate without --val-y", lambda f: ["evaluate", "--checkpoint", good_checkpoint(f), "--val-x", images(f)], "evaluate needs"),
    Case("train --val-x without --val-y", lambda f: train(*TINY)(f) + ["--val-x", images(f)], "--val-x and --val-y go together"),
    Case("evaluate --predictions without --val-y", lambda f: ["evaluate", "--predictions", raw(f, "p.csv", b"id,label\n0,1\n")], "needs --val-y"),
    Case("predictions that are not a CSV", lambda f: ["evaluate", "--predictions", raw(f, "p.csv", b"\x00\x01"), "--val-y", npy(f, "y.npy", np.zeros(1, np.int64))], "expected columns id,label"),
    Case("predictions with ids out of order", lambda f: ["evaluate", "--predictions", raw(f, "p.csv", b"id,label\n1,0\n0,1\n"), "--val-y", npy(f, "y.npy", np.zeros(2, np.int64))], "ids 0..N-1"),
    Case("predictions file missing", lambda f: ["evaluate", "--predictions", str(f / "none.csv"), "--val-y", npy(f, "y.npy", np.zeros(2, np.int64))], "none.csv: prediction CSV not found"),
    Case("predictions file is a FIFO", lambda f: ["evaluate", "--predictions", fifo(f, "p.csv"), "--val-y", npy(f, "y.npy", np.zeros(2, np.int64))], "not a regular file"),
    Case("training on a single image", lambda f: ["train", "--data", npy(f, "one.npy", two_kinds(2)[0][:1]), "--out", str(f / "m.pth")], "at least 2 images"),
]
# fmt: on


def run(case: Case, folder: Path) -> tuple[int, str, set[str]]:
    args = case.make(folder)
    before = {p.name for p in folder.iterdir()}
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    after = {p.name for p in folder.iterdir()}
    return code, err.getvalue(), after - before


@pytest.mark.parametrize("case", CASES, ids=[c.what for c in CASES])
def test_bad_input_gets_one_clear_line_and_writes_nothing(case, tmp_path, capfd):
    code, err, created = run(case, tmp_path)
    assert code == 2, err
    assert err.startswith("aecluster: error: ") and err.count("\n") == 1, err
    assert case.expect in err, err
    assert "Traceback" not in err
    assert not {"pred.csv", "m.pth"} & created, created
    assert "this must never run" not in capfd.readouterr().out
    if case.what.startswith("output file exists"):
        assert (tmp_path / "pred.csv").read_text() == "precious\n"


def test_there_are_at_least_120_cases():
    assert len(CASES) >= 120


if __name__ == "__main__":
    import tempfile

    print("| # | bad input | message (exit code 2) |\n|---|---|---|")
    for i, case in enumerate(CASES, 1):
        with tempfile.TemporaryDirectory() as d:
            code, err, _ = run(case, Path(d))
        msg = err.strip().replace(d, "DIR").replace("|", "\\|")
        print(f"| {i} | {case.what} | `{msg}` (exit {code}) |")
