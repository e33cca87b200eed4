"""Large-set machinery on small data: streamed batches, the decode cache, approximate
neighbours, and training across processes with torchrun."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import TINY, two_kinds
from PIL import Image
from test_training import FINETUNE

from aecluster import scan
from aecluster.checkpoint import load_checkpoint, load_model
from aecluster.data import ImageBatches, batch_loader
from aecluster.predict import predict
from aecluster.recipes import apply_overrides
from aecluster.sources import read_images
from aecluster.training import train


def _same_weights(a, b) -> bool:
    a, b = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return all(torch.equal(a[k], b[k]) for k in a)


def test_training_from_a_memory_map_with_workers_equals_training_in_ram(tmp_path, tiny_recipe):
    images, _ = two_kinds(130)
    np.save(tmp_path / "x.npy", images)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    recipe = apply_overrides(tiny_recipe, FINETUNE)
    train(images, recipe, tmp_path / "ram.pth", progress=False)
    train(mapped, recipe, tmp_path / "mmap.pth", progress=False, workers=2)
    assert _same_weights(tmp_path / "ram.pth", tmp_path / "mmap.pth")
    saved = [load_checkpoint(tmp_path / f"{n}.pth")["recipe"] for n in ("ram", "mmap")]
    assert saved[0] == saved[1]  # the fine-tuned head too


def test_a_loader_worker_reopens_a_memory_map_instead_of_copying_it(tmp_path):
    images, _ = two_kinds(64)
    np.save(tmp_path / "x.npy", images)
    dataset = ImageBatches(np.load(tmp_path / "x.npy", mmap_mode="r"))
    assert "memmap" in dataset.__getstate__()  # pickled as its file name, not its bytes
    batches = [torch.tensor([5, 3, 60]), torch.tensor([0, 1])]
    rows = list(batch_loader(dataset.images, batches, workers=2))
    assert [r.numpy().tolist() for r in rows] == [images[b.numpy()].tolist() for b in batches]


def _folder(tmp_path, n=40):
    images, _ = two_kinds(n)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    return folder, images


def test_decoded_files_are_cached_as_a_memory_map_and_reused_while_unchanged(tmp_path):
    folder, images = _folder(tmp_path)
    cache = tmp_path / "cache"
    first = read_images(folder, cache=cache)
    assert isinstance(first.images, np.memmap) and np.array_equal(first.images, images)
    assert first.skipped == [("broken.png", first.skipped[0][1])]
    assert sorted(p.name for p in cache.iterdir()) == ["images.json", "images.npy"]
    stamp = (cache / "images.npy").stat().st_mtime_ns
    again = read_images(folder, cache=cache)
    assert (cache / "images.npy").stat().st_mtime_ns == stamp  # read, not decoded again
    assert again.paths == first.paths and again.skipped == first.skipped
    assert np.array_equal(again.images, images)
    Image.fromarray(images[1]).save(folder / "000.png")  # a file changes: decoded again
    changed = read_images(folder, cache=cache)
    assert np.array_equal(changed.images[0], images[1])
    assert np.array_equal(read_images(folder).images, changed.images)  # same as without cache


def test_a_failed_decode_leaves_no_cache_and_no_temp_file(tmp_path):
    folder, _ = _folder(tmp_path, n=3)
    with pytest.raises(Exception, match="broken.png"):
        read_images(folder, cache=tmp_path / "cache", strict=True)
    assert not (tmp_path / "cache").exists()


def test_train_caches_decoded_files_in_its_run_folder(tmp_path):
    folder, _ = _folder(tmp_path)
    out = tmp_path / "m.pth"
    settings = [arg for s in TINY for arg in ("--set", s)]
    cmd = [sys.executable, "-m", "aecluster", "train", "--data", str(folder), "--out", str(out),
           "--recipe", "baseline", "--quiet", *settings]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    assert (tmp_path / "m.pth.run" / "images.npy").exists()
    csv = tmp_path / "p.csv"
    subprocess.run([sys.executable, "-m", "aecluster", "predict", "--checkpoint", str(out),
                    "--data", str(folder), "--out", str(csv), "--cache",
                    str(tmp_path / "m.pth.run"), "--quiet"], check=True)  # fmt: skip
    assert len(csv.read_text().splitlines()) == 41


def test_approximate_neighbours_above_the_exact_limit_are_mostly_the_exact_ones(monkeypatch):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((8, 16))
    x = centres[rng.integers(0, 8, 4000)] + 0.5 * rng.standard_normal((4000, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    exact = scan.nearest_neighbors(x, 10)
    monkeypatch.setattr(scan, "EXACT_NEIGHBORS", 1000)
    approx = scan.nearest_neighbors(x, 10, seed=3)
    assert approx.shape == exact.shape and not (approx == np.arange(4000)[:, None]).any()
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall > 0.8
    assert np.array_equal(approx, scan.nearest_neighbors(x, 10, seed=3))  # seeded: repeatable


def _torchrun(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run a torchrun command; on a hang, kill the launcher and its workers, not only the
    launcher (workers left behind would hold the CPU)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_torchrun_trains_with_two_processes_and_the_checkpoint_predicts(tmp_path):
    images, y = two_kinds(128)
    np.save(tmp_path / "x.npy", images)
    out = tmp_path / "m.pth"
    settings = [arg for s in TINY for arg in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--standalone", "-m", "aecluster", "train", "--data", str(tmp_path / "x.npy"),
           "--out", str(out), "--recipe", "baseline", "--quiet", *settings]  # fmt: skip
    run = _torchrun(cmd, env)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and lines[0]["world_size"] == 2  # process 0 alone reports
    assert load_checkpoint(out)["world_size"] == 2
    first = load_checkpoint(out)["model"]
    # a rerun resumes from the run folder's last epoch (read by process 0, sent to process 1)
    run = _torchrun([*cmd, "--overwrite"], env)
    assert run.returncode == 0, run.stderr[-2000:]
    again = load_checkpoint(out)["model"]
    assert all(torch.equal(first[k], again[k]) for k in first)
    model, recipe = load_model(out)
    assert len(predict(model, recipe, images)) == len(images)
    # one process with the same recipe trains another model: the batches were shared
    train(images, apply_overrides(recipe, []), tmp_path / "one.pth", progress=False)
    assert not _same_weights(out, tmp_path / "one.pth")
