"""Training and inference speed of each built-in recipe on this machine, on real images.

    python benchmarks/speed.py [--data ../shared/data/hw9like/trainX.npy] [--steps 6]

Prints a markdown table: training images/s and seconds per epoch of trainX (the recipe's whole
objective: reconstruction plus any auxiliary losses), in float32 with and without channels_last
and in bf16 autocast (`train.precision = "bf16"`) with channels_last, and encoder-only embedding
images/s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from aecluster.data import load_images, to_tensor
from aecluster.device import autocast, memory_layout
from aecluster.models import build_model
from aecluster.objective import Objective
from aecluster.optim import build_optimizer
from aecluster.predict import embed
from aecluster.recipes import load_recipe

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/hw9like/trainX.npy"


def train_speed(
    recipe: dict, images: np.ndarray, steps: int, channels_last: bool, precision: str = "fp32"
) -> float:
    torch.manual_seed(0)
    model = build_model(recipe["model"]["name"], **recipe["model"]["params"])
    layout = memory_layout(channels_last)
    objective = Objective(model, recipe, layout).to(memory_format=layout)
    opt = build_optimizer(objective.parameters(), recipe["train"])
    bs = recipe["train"]["batch_size"]
    g = torch.Generator().manual_seed(0)
    x = to_tensor(images[:bs])
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        with autocast(torch.device("cpu"), precision):
            loss = objective(x, g)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return bs * steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--recipes", nargs="+", default=["baseline", "improved", "best"])
    args = p.parse_args()
    images = load_images(args.data)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(images)} images\n")
    print("| recipe | train img/s (NCHW) | train img/s (channels_last) | "
          "train img/s (channels_last, bf16) | s/epoch (fastest) | embed img/s |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name in args.recipes:
        recipe = load_recipe(name)
        plain = train_speed(recipe, images, args.steps, channels_last=False)
        fast = train_speed(recipe, images, args.steps, channels_last=True)
        bf16 = train_speed(recipe, images, args.steps, channels_last=True, precision="bf16")
        model = build_model(recipe["model"]["name"], **recipe["model"]["params"])
        t0 = time.perf_counter()
        embed(model, images[:2048])
        embed_speed = 2048 / (time.perf_counter() - t0)
        best = max(plain, fast, bf16)
        print(f"| {name} | {plain:.0f} | {fast:.0f} | {bf16:.0f} | {len(images) / best:.0f} | "
              f"{embed_speed:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
