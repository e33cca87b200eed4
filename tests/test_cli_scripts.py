"""The CLI and the four homework scripts, end to end on generated data with tiny settings."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, TINY, TINY_POOLED

from aecluster.cli import main
from aecluster.predict import read_predictions

TINY_ARGS = " ".join(f"--set {s}" for s in TINY_POOLED) + " --quiet"  # the scripts split on spaces


def run_script(name, *args, env_extra=None):
    env = {**os.environ, "AECLUSTER_TRAIN_ARGS": TINY_ARGS, **(env_extra or {})}
    return subprocess.run(["bash", str(REPO / name), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip


@pytest.mark.parametrize("script", ["train_baseline.sh", "train_improved.sh", "train_best.sh"])
def test_train_script_then_hw9_best(tmp_path, images_file, script):
    ckpt = tmp_path / "model.pth"
    extra = {}
    if script != "train_baseline.sh":  # best and improved fine-tune from a SCAN clustering
        scan = "--set cluster.reduce=[] --set cluster.method={name='scan',n_heads=2,steps=16}"
        extra = {"AECLUSTER_TRAIN_ARGS": f"{TINY_ARGS} {scan} --set finetune.epochs=1"}
    r = run_script(script, images_file, ckpt, env_extra=extra)
    assert r.returncode == 0, r.stderr
    assert ckpt.exists()
    pred = tmp_path / "pred.csv"
    r = run_script("hw9_best.sh", images_file, ckpt, pred)
    assert r.returncode == 0, r.stderr
    lines = pred.read_text().splitlines()
    assert lines[0] == "id,label" and len(lines) == 97
    assert read_predictions(pred).shape == (96,)


@pytest.mark.parametrize(
    "script", ["hw9_best.sh", "train_baseline.sh", "train_improved.sh", "train_best.sh"]
)
def test_wrong_arguments_print_usage_and_exit_2(script):
    r = run_script(script, "only-one-arg")
    assert r.returncode == 2
    assert r.stderr.startswith(f"usage: bash {script}")


def test_cli_train_predict_evaluate(tmp_path, images_file, capsys):
    ckpt, pred = tmp_path / "m.pth", tmp_path / "p.csv"
    labels = tmp_path / "y.npy"
    np.save(labels, np.arange(96) % 2)
    sets = [a for s in TINY for a in ("--set", s)]
    assert main(["train", "--recipe", "baseline", "--data", str(images_file), "--out", str(ckpt),
                 "--quiet", *sets]) == 0  # fmt: skip
    assert main(["predict", "--checkpoint", str(ckpt), "--data", str(images_file),
                 "--out", str(pred), "--quiet"]) == 0  # fmt: skip
    assert main(["evaluate", "--predictions", str(pred), "--val-y", str(labels)]) == 0
    assert '"accuracy"' in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(ckpt), "--val-x", str(images_file),
                 "--val-y", str(labels)]) == 0  # fmt: skip
    assert "recon_mse" in capsys.readouterr().out
    # the clustering of a trained checkpoint can be changed without retraining
    assert main(["evaluate", "--checkpoint", str(ckpt), "--val-x", str(images_file),
                 "--val-y", str(labels), "--set", "cluster.reduce=[]",
                 "--set", "cluster.method={name='gmm'}"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["accuracy"] > 0.9


def test_errors_are_one_line_exit_2_and_write_nothing(tmp_path, images_file, capsys):
    pred = tmp_path / "p.csv"
    code = main(["predict", "--checkpoint", str(tmp_path / "none.pth"), "--data",
                 str(images_file), "--out", str(pred)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "none.pth: checkpoint not found" in err
    assert not pred.exists()


def test_every_command_has_help():
    for cmd in ["train", "predict", "evaluate", "demo", "report"]:
        r = subprocess.run([sys.executable, "-m", "aecluster", cmd, "--help"],
                           capture_output=True, text=True)  # fmt: skip
        assert r.returncode == 0 and "usage: aecluster" in r.stdout


def test_outputs_get_the_usual_file_mode(tmp_path):
    from aecluster.predict import write_predictions

    old = os.umask(0o022)
    try:
        write_predictions(tmp_path / "p.csv", np.array([0, 1]))
    finally:
        os.umask(old)
    assert (tmp_path / "p.csv").stat().st_mode & 0o777 == 0o644
