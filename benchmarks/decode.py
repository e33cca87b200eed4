"""How fast image files become model input: N JPEG files (made from hw9like images at 150x150,
the size of the scenery photos they came from) decoded by `read_images`, by thread count.

    python benchmarks/decode.py [--n 10000] [--size 150]

Writes the files to a temp folder first (not timed), then times `read_images` on the folder.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from aecluster.sources import read_images

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/hw9like/trainX.npy"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=150)
    args = ap.parse_args()
    source = np.load(DATA, mmap_mode="r")
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        for i in range(args.n):
            img = Image.fromarray(np.asarray(source[i % len(source)]))
            sub = folder / f"{i // 1000:02d}"
            sub.mkdir(exist_ok=True)
            img.resize((args.size, args.size), Image.Resampling.BICUBIC).save(
                sub / f"{i:05d}.jpg", quality=90
            )
        mb = sum(p.stat().st_size for p in folder.rglob("*.jpg")) / 2**20
        print(f"{args.n} JPEG files of {args.size}x{args.size}, {mb:.0f} MiB, cpu_count "
              f"{os.cpu_count()}")  # fmt: skip
        print("| threads | seconds | images/s |\n|---|---|---|")
        for workers in (1, os.cpu_count() or 1):
            t0 = time.perf_counter()
            data = read_images(folder, workers=workers)
            seconds = time.perf_counter() - t0
            assert len(data) == args.n and not data.skipped
            print(f"| {workers} | {seconds:.1f} | {args.n / seconds:.0f} |")


if __name__ == "__main__":
    main()
