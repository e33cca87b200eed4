"""Every bad input we know of, at the CLI: one plain line naming the file, exit code 2, no output.

`python tests/test_bad_inputs.py` prints the table in docs/bad-inputs.md from these same cases.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY, two_kinds  # noqa: E402

from aecluster.checkpoint import save_checkpoint  # noqa: E402
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


U8 = np.uint8
CASES = [
    Case("images file missing", predict(lambda f: str(f / "nope.npy")), "nope.npy: file not found"),
    Case("images path is a directory", predict(lambda f: str(f)), "is a directory"),
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
    Case("--set without a value", train("train.epochs"), "expected section.key=value"),
    Case("--set with a bad value", train("train.epochs=three"), "not valid TOML"),
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
]


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


def test_there_are_at_least_30_cases():
    assert len(CASES) >= 30


if __name__ == "__main__":
    import tempfile

    print("| # | bad input | message (exit code 2) |\n|---|---|---|")
    for i, case in enumerate(CASES, 1):
        with tempfile.TemporaryDirectory() as d:
            code, err, _ = run(case, Path(d))
        msg = err.strip().replace(d, "DIR").replace("|", "\\|")
        print(f"| {i} | {case.what} | `{msg}` (exit {code}) |")
