"""No entry point may replace one of its own inputs, by any name; every input is byte-identical
after the call. Outputs that are devices are written into, symlinks are followed."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, TINY, two_kinds

from aecluster.checkpoint import save_checkpoint
from aecluster.cli import main
from aecluster.errors import InputError
from aecluster.models import build_model
from aecluster.recipes import apply_overrides, load_recipe
from aecluster.report import build_report
from aecluster.training import train

SETS = [a for s in TINY for a in ("--set", s)]


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file() and not p.is_symlink()}  # fmt: skip


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A folder of inputs: images, labels, a recipe and a trained-shape checkpoint."""
    images, y = two_kinds(32)
    np.save(tmp_path / "X.npy", images)
    np.save(tmp_path / "Y.npy", y)
    (tmp_path / "r.toml").write_text('base = "baseline"\n[train]\nepochs = 1\n')
    recipe = apply_overrides(load_recipe("baseline"), TINY)
    model = build_model(recipe["model"]["name"], **recipe["model"]["params"])
    save_checkpoint(tmp_path / "m.pth", {"recipe": recipe, "model": model.state_dict()})
    return tmp_path


def cli(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([*args, "--quiet"])
    return code, err.getvalue()


def script(name: str, *args: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "AECLUSTER_TRAIN_ARGS": " ".join(f"--set {s}" for s in TINY)}
    return subprocess.run(["bash", str(REPO / name), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip


def aliases(ws: Path, name: str) -> list[Path]:
    """The same file by other names: itself, a symlink, a hard link, a path through `..`."""
    (ws / "link").symlink_to(ws / name)
    os.link(ws / name, ws / "hard")
    (ws / "sub").mkdir()
    return [ws / name, ws / "link", ws / "hard", ws / "sub" / ".." / name]


@pytest.mark.parametrize("target", ["X.npy", "m.pth"])
def test_predict_refuses_to_write_over_an_input(ws, target):
    outs = aliases(ws, target)
    before = digest(ws)
    for out in outs:
        code, err = cli("predict", "--data", str(ws / "X.npy"), "--checkpoint", str(ws / "m.pth"),
                        "--out", str(out), "--overwrite")  # fmt: skip
        assert code == 2 and "is also an input" in err, err
    assert digest(ws) == before


@pytest.mark.parametrize("target", ["X.npy", "Y.npy", "r.toml"])
def test_train_refuses_to_write_over_an_input(ws, target):
    outs = aliases(ws, target)
    before = digest(ws)
    for out in outs:
        code, err = cli("train", "--data", str(ws / "X.npy"), "--val-x", str(ws / "X.npy"),
                        "--val-y", str(ws / "Y.npy"), "--recipe", str(ws / "r.toml"),
                        "--out", str(out), "--overwrite", *SETS)  # fmt: skip
        assert code == 2 and "is also an input" in err, err
    assert digest(ws) == before
    assert not list(ws.glob("*.run"))


def test_train_refuses_a_metrics_file_that_is_an_input(ws):
    before = digest(ws)
    (ws / "X.metrics.jsonl").symlink_to(ws / "X.npy")
    code, err = cli("train", "--data", str(ws / "X.npy"), "--out", str(ws / "X.pth"), *SETS)
    assert code == 2 and "is also an input" in err, err
    assert digest(ws) == before


@pytest.mark.parametrize(
    "args",
    [
        ("hw9_best.sh", "X.npy", "m.pth", "X.npy"),
        ("hw9_best.sh", "X.npy", "m.pth", "m.pth"),
        ("hw9_best.sh", "X.npy", "m.pth", "link"),
        ("train_baseline.sh", "X.npy", "X.npy"),
        ("train_improved.sh", "X.npy", "hard"),
        ("train_improved.sh", "link", "X.npy"),
        ("train_best.sh", "X.npy", "X.npy"),
    ],
)
def test_homework_scripts_never_replace_their_inputs(ws, args):
    (ws / "link").symlink_to(ws / "X.npy")
    os.link(ws / "X.npy", ws / "hard")
    before = digest(ws)
    name, *paths = args
    r = script(name, *(ws / p for p in paths))
    assert r.returncode == 2 and "is also an input" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1
    assert digest(ws) == before


def test_evaluate_leaves_its_inputs_alone(ws):
    before = digest(ws)
    code, err = cli("evaluate", "--checkpoint", str(ws / "m.pth"), "--val-x", str(ws / "X.npy"),
                    "--val-y", str(ws / "Y.npy"), "--data", str(ws / "X.npy"))  # fmt: skip
    assert code == 0, err
    assert digest(ws) == before


def test_report_refuses_a_figure_path_that_is_an_input(ws):
    data = ws / "data"
    data.mkdir()
    np.save(data / "trainX.npy", two_kinds(32)[0])
    out = ws / "out"
    out.mkdir()
    (out / "embedding.png").symlink_to(data / "trainX.npy")
    before, before_data = digest(ws), digest(data)
    code, err = cli("report", "--checkpoint", str(ws / "m.pth"), "--data-dir", str(data),
                    "--out", str(out))  # fmt: skip
    assert code == 2 and "is also an input" in err, err
    assert digest(ws) == before and digest(data) == before_data
    with pytest.raises(InputError, match="is also an input"):
        build_report(ws / "m.pth", data, out)


def test_demo_keeps_earlier_results_without_overwrite(ws):
    out = ws / "demo"
    out.mkdir()
    (out / "predictions.csv").write_text("precious\n")
    code, err = cli("demo", "--out", str(out))
    assert code == 2 and "already exists (pass --overwrite" in err, err
    assert (out / "predictions.csv").read_text() == "precious\n"
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv"]


def test_api_train_refuses_to_replace_its_memory_mapped_images(ws, tiny_recipe):
    images = np.load(ws / "X.npy", mmap_mode="r")
    before = digest(ws)
    with pytest.raises(InputError, match="is also an input"):
        train(images, tiny_recipe, ws / "X.npy", progress=False)
    assert digest(ws) == before
    assert not (ws / "X.npy.run").exists()


def test_a_device_output_is_written_into_not_replaced(ws):
    code, err = cli("predict", "--data", str(ws / "X.npy"), "--checkpoint", str(ws / "m.pth"),
                    "--out", "/dev/null")  # fmt: skip
    assert code == 0, err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_full_disk_is_one_line(ws):
    code, err = cli("predict", "--data", str(ws / "X.npy"), "--checkpoint", str(ws / "m.pth"),
                    "--out", "/dev/full")  # fmt: skip
    assert code == 2 and "no space left" in err and err.count("\n") == 1, err


def test_a_symlinked_output_is_followed_and_stays_a_link(ws):
    (ws / "real.csv").write_text("old\n")
    (ws / "pred.csv").symlink_to(ws / "real.csv")
    code, err = cli("predict", "--data", str(ws / "X.npy"), "--checkpoint", str(ws / "m.pth"),
                    "--out", str(ws / "pred.csv"), "--overwrite")  # fmt: skip
    assert code == 0, err
    assert (ws / "pred.csv").is_symlink()
    assert (ws / "real.csv").read_text().startswith("id,label\n")


def test_cluster_refuses_outputs_that_are_its_images(ws):
    out = ws / "run"
    out.mkdir()
    (out / "clusters.csv").symlink_to(ws / "X.npy")
    before = digest(ws)
    code, err = cli("cluster", str(ws / "X.npy"), "--clusters", "2", "--out", str(out),
                    "--overwrite", "--recipe", "baseline", *SETS)  # fmt: skip
    assert code == 2 and "is also an input" in err, err
    assert digest(ws) == before


def test_estimator_refuses_to_save_over_its_images(ws, tiny_recipe):
    from aecluster import AECluster

    images = np.load(ws / "X.npy", mmap_mode="r")
    before = digest(ws)
    with pytest.raises(InputError, match="is also an input"):
        AECluster(n_clusters=2, recipe="baseline", settings=TINY).fit(images, out=ws / "X.npy")
    assert digest(ws) == before
