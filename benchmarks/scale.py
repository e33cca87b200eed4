"""Large sets on one machine: prediction time and peak memory at 2*10^5 and 10^6 images, and
training images/s with one and two processes (torchrun).

    python benchmarks/scale.py [--sizes 200000 1000000] [--work /tmp/aecluster-scale]

The images are hw9like's trainX repeated with seeded augmentation (flips, shifts of up to 3
pixels, brightness), written once as a memory-mapped uint8 .npy under --work (3 GB for 10^6;
never inside the repository). Each command runs in its own process; its peak resident memory
(which counts the pages of the memory-mapped images it has read) is measured by a wrapper
process. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HW9 = REPO.parent / "shared/data/hw9like/trainX.npy"
CHECKPOINTS = REPO / "checkpoints"


def make_images(n: int, path: Path, seed: int = 0) -> Path:
    """n augmented copies of trainX's images as a uint8 .npy, written in chunks."""
    if path.exists() and np.load(path, mmap_mode="r").shape[0] == n:
        return path
    source = np.load(HW9)
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 32, 32, 3))
    for start in range(0, n, 8192):
        m = min(8192, n - start)
        batch = source[rng.integers(0, len(source), m)].astype(np.int16)
        flip = rng.random(m) < 0.5
        batch[flip] = batch[flip, :, ::-1]
        dy, dx = rng.integers(-3, 4, 2)
        batch = np.roll(batch, (dy, dx), axis=(1, 2))
        batch += rng.integers(-20, 21, (m, 1, 1, 1)).astype(np.int16)
        out[start : start + m] = batch.clip(0, 255)
    out.flush()
    return path


def measured(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in GB and stdout of `cmd`, run by a wrapper process."""
    wrapper = [sys.executable, __file__, "--measure", "--", *cmd]
    out = subprocess.run(wrapper, capture_output=True, text=True, env=env, check=True).stdout
    *lines, last = out.strip().splitlines()
    seconds, rss_gb = map(float, last.split())
    return seconds, rss_gb, "\n".join(lines)


def _measure(cmd: list[str]) -> None:
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if run.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{run.stderr[-3000:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(run.stdout)
    print(f"{seconds:.2f} {peak_kb / 2**20:.3f}")


def predict_row(model: str, images: Path, n: int, work: Path) -> str:
    cmd = [sys.executable, "-m", "aecluster", "predict", "--checkpoint",
           str(CHECKPOINTS / f"{model}.pth"), "--data", str(images), "--out",
           str(work / f"{model}_{n}.csv"), "--overwrite", "--quiet", "--device", "cpu"]  # fmt: skip
    seconds, rss, _ = measured(cmd)
    speed = f"{n / seconds:,.0f} img/s"
    return f"| predict {model} | {n:,} | {seconds / 60:.2f} min | {rss:.2f} GB | {speed} |"


def train_row(processes: int, images: Path, n: int, work: Path) -> str:
    """One epoch of the best recipe's autoencoder phase, timed from its own metrics row."""
    run_dir = work / f"train_{processes}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={processes}", "-m", "aecluster", "train", "--data", str(images),
           "--out", str(work / f"train_{processes}.pth"), "--overwrite", "--run-dir",
           str(run_dir), "--quiet", "--device", "cpu", "--set", "train.epochs=1",
           "--set", "finetune.epochs=0", "--set", "cluster.method=kmeans"]  # fmt: skip
    subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    _, rss, _ = measured(cmd)
    row = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    seconds = row["minutes"] * 60
    what = f"train best, {processes} process{'es' if processes > 1 else ''}"
    speed = f"{n / seconds:,.0f} img/s"
    return f"| {what} | {n:,} | {seconds / 60:.2f} min/epoch | {rss:.2f} GB (each) | {speed} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--train-size", type=int, default=20_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/aecluster-scale"))
    ap.add_argument("--parts", nargs="+", choices=("predict", "train"),
                    default=["predict", "train"])  # fmt: skip
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"cpu_count {os.cpu_count()}; images: hw9like trainX augmented, memory-mapped")
    print("| what | images | time | peak RSS | speed |\n|---|---|---|---|---|")
    for n in args.sizes if "predict" in args.parts else ():
        images = make_images(n, args.work / f"images_{n}.npy")
        models = ["best", "baseline"] if n <= 200_000 else ["best"]
        for model in models:
            print(predict_row(model, images, n, args.work), flush=True)
    images = make_images(args.train_size, args.work / f"images_{args.train_size}.npy")
    for processes in (1, 2) if "train" in args.parts else ():
        print(train_row(processes, images, args.train_size, args.work), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        _measure(sys.argv[3:])
    else:
        main()
