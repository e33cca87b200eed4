"""Kill training at a random moment (SIGKILL) or interrupt it (Ctrl-C); rerun; same result."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import torch
from conftest import TINY, two_kinds

from aecluster.checkpoint import load_checkpoint
from aecluster.training import epoch_checkpoints

SETTINGS = [*TINY, "train.epochs=8", "train.checkpoint_every=1"]


def train_cmd(data, out):
    sets = [a for s in SETTINGS for a in ("--set", s)]
    return [sys.executable, "-m", "aecluster", "train", "--data", str(data), "--out", str(out),
            "--quiet", *sets]  # fmt: skip


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


def test_ctrl_c_saves_the_last_epoch_and_exits_cleanly(tmp_path):
    data = tmp_path / "x.npy"
    np.save(data, two_kinds(256)[0])
    out = tmp_path / "m.pth"
    proc = subprocess.Popen(train_cmd(data, out), stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    wait_for_first_checkpoint(tmp_path / "m.pth.run", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # it had already finished
        return
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert epoch_checkpoints(tmp_path / "m.pth.run")
