"""Kill training at a random moment (SIGKILL) or interrupt it (Ctrl-C); rerun; same result."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import TINY, flip_a_weight_bit, two_kinds

from aecluster.checkpoint import load_checkpoint
from aecluster.runs import epoch_checkpoints

SETTINGS = [*TINY, "train.epochs=8", "train.checkpoint_every=1"]


def train_cmd(data, out):
    """Training that reruns into the same output (a kill may land after the final save)."""
    sets = [a for s in SETTINGS for a in ("--set", s)]
    return [sys.executable, "-m", "aecluster", "train", "--recipe", "baseline", "--data",
            str(data), "--out", str(out), "--quiet", "--overwrite", *sets]  # fmt: skip


def same_weights(a, b) -> bool:
    wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return all(torch.equal(wa[k], wb[k]) for k in wa)


def wait_for_first_checkpoint(run_dir, proc, timeout=120):
    t0 = time.monotonic()
    while not (run_dir.exists() and epoch_checkpoints(run_dir)):
        assert proc.poll() is None and time.monotonic() - t0 < timeout
        time.sleep(0.05)


def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path):
    data = tmp_path / "x.npy"
    np.save(data, two_kinds(256)[0])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(train_cmd(data, tmp_path / "full.pth"), check=True, env=env, timeout=300)

    killed = tmp_path / "killed.pth"
    proc = subprocess.Popen(train_cmd(data, killed), env=env)
    wait_for_first_checkpoint(tmp_path / "killed.pth.run", proc)
    time.sleep(random.Random().uniform(0.0, 1.5))  # somewhere inside a later epoch or a write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    whole = [p for p in (tmp_path / "killed.pth.run").iterdir() if p.suffix == ".pth"]
    for path in whole + ([killed] if killed.exists() else []):  # every file there is whole
        load_checkpoint(path)

    subprocess.run(train_cmd(data, killed), check=True, env=env, timeout=300)
    assert same_weights(tmp_path / "full.pth", killed)
    assert not list((tmp_path / "killed.pth.run").glob(".*.tmp"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_saves_the_last_epoch_and_exits_cleanly(tmp_path, sig):
    data = tmp_path / "x.npy"
    np.save(data, two_kinds(256)[0])
    out = tmp_path / "m.pth"
    proc = subprocess.Popen(train_cmd(data, out), stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    wait_for_first_checkpoint(tmp_path / "m.pth.run", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # it had already finished
        return
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert epoch_checkpoints(tmp_path / "m.pth.run")
    assert not list((tmp_path / "m.pth.run").glob(".*.tmp"))


# Run the CLI with one function wrapped so that the process SIGKILLs itself at a chosen moment.
KILLER = """
import os, signal, sys
import aecluster.files as files
import aecluster.objective as objective
import aecluster.training as training

target, when, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
owner = {"replace": files.os, "forward": objective.Objective}.get(target, training)
name = {"replace": "replace", "forward": "forward"}.get(target, target)
original, calls = getattr(owner, name), [0]

def wrapped(*args, **kwargs):
    calls[0] += 1
    if when == "before" and calls[0] == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    result = original(*args, **kwargs)
    if when == "after" and calls[0] == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(owner, name, wrapped)
from aecluster.cli import main
sys.exit(main(sys.argv[4:]))
"""

STAGES = [
    ("forward", "before", 5),  # inside the third epoch (2 batches per epoch)
    ("replace", "before", 3),  # an epoch checkpoint written to its temp file, not yet renamed
    ("save_checkpoint", "after", 2),  # checkpoint renamed, its metrics.jsonl row not written
    ("write_text_atomic", "after", 3),  # checkpoint and metrics written, next epoch not begun
    ("save_checkpoint", "before", 9),  # every epoch done, the final checkpoint not yet written
]


STABLE = [*SETTINGS, 'select.checkpoint="stability"']  # the choice reads every row
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def staged_args(data, out) -> list[str]:
    sets = [a for s in STABLE for a in ("--set", s)]
    return [
        "train",
        "--recipe",
        "baseline",
        "--data",
        str(data),
        "--out",
        str(out),
        "--quiet",
        *sets,
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    np.save(folder / "x.npy", two_kinds(64)[0])
    subprocess.run([sys.executable, "-m", "aecluster", *staged_args(folder / "x.npy",
                    folder / "full.pth")], check=True, env=ENV, timeout=300)  # fmt: skip
    return folder


def metric_rows(path):
    return [{k: v for k, v in json.loads(line).items() if k != "minutes"}
            for line in path.read_text().splitlines()]  # fmt: skip


@pytest.mark.parametrize("stage", STAGES, ids=["-".join(map(str, s)) for s in STAGES])
def test_sigkill_at_every_stage_then_rerun_is_bit_identical(tmp_path, uninterrupted, stage):
    data, killed = uninterrupted / "x.npy", tmp_path / "killed.pth"
    r = subprocess.run([sys.executable, "-c", KILLER, *map(str, stage),
                        *staged_args(data, killed)], env=ENV, timeout=300)  # fmt: skip
    assert r.returncode == -signal.SIGKILL
    subprocess.run([sys.executable, "-m", "aecluster", *staged_args(data, killed)], check=True,
                   env=ENV, timeout=300)  # fmt: skip
    assert same_weights(uninterrupted / "full.pth", killed)
    assert metric_rows(uninterrupted / "full.metrics.jsonl") == metric_rows(
        tmp_path / "killed.metrics.jsonl"
    )
    assert not list((tmp_path / "killed.pth.run").glob(".*.tmp"))


def test_a_corrupt_latest_checkpoint_falls_back_with_a_warning(tmp_path, capsys):
    from aecluster.recipes import apply_overrides, load_recipe
    from aecluster.training import train

    images = two_kinds(64)[0]
    recipe = apply_overrides(load_recipe("baseline"), [*SETTINGS, "train.epochs=3"])
    train(images, recipe, tmp_path / "full.pth", progress=False)
    run = tmp_path / "m.pth.run"
    train(images, recipe, tmp_path / "m.pth", progress=False, keep_checkpoints=True)
    flip_a_weight_bit(run / "epoch_0003.pth")
    (tmp_path / "m.pth").unlink()
    train(images, recipe, tmp_path / "m.pth", progress=True, keep_checkpoints=True)
    assert "set aside" in capsys.readouterr().err
    assert (run / "epoch_0003.pth.corrupt").exists()
    assert same_weights(tmp_path / "full.pth", tmp_path / "m.pth")


def test_sigterm_during_predict_leaves_no_temp_file_and_no_output(tmp_path):
    from aecluster.checkpoint import save_checkpoint
    from aecluster.models import build_model
    from aecluster.recipes import apply_overrides, load_recipe

    recipe = apply_overrides(load_recipe("baseline"), SETTINGS)
    model = build_model(recipe["model"]["name"], **recipe["model"]["params"])
    save_checkpoint(tmp_path / "m.pth", {"recipe": recipe, "model": model.state_dict()})
    np.save(tmp_path / "x.npy", two_kinds(32)[0])
    # SIGTERM arrives with the CSV in its temp file, just before the rename
    terminate = KILLER.replace("signal.SIGKILL", "signal.SIGTERM")
    r = subprocess.run([sys.executable, "-c", terminate, "replace", "before", "1", "predict",
                        "--data", str(tmp_path / "x.npy"), "--checkpoint", str(tmp_path / "m.pth"),
                        "--out", str(tmp_path / "p.csv"), "--quiet"],
                       env=ENV, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 130 and "interrupted" in r.stderr, r.stderr
    assert not (tmp_path / "p.csv").exists()
    assert not list(tmp_path.glob(".*.tmp"))
