"""The design protocol: a recipe judged on three kinds of images, never one, as the mean and
standard deviation over seeds.

    python benchmarks/protocol.py --recipe best --budget-minutes 10 --seeds 0 1 2 \
        [--set train.precision=bf16 ...] [--sets dev cifar digits] [--log runs.jsonl] \
        [--device cuda --jobs 9] [--keep-runs DIR] [--also 'cluster.tta={flip=true}']

- dev: trained on hw9like trainX (8500 images, 2 clusters), scored on devX (2000 labelled
  images the recipe never trained on); val (500) is reported beside it, as the homework does.
- cifar: trained on CIFAR-10 trainX (20,000 images, 10 clusters), scored on valX (1000).
- digits: scikit-learn's 1797 handwritten digits (8x8 grayscale, resized to 32x32), 10 clusters,
  scored on the images it clustered.

Each run trains with `AECluster(recipe, budget_minutes, random_state=seed)`: with a budget the
planner fills it. Labels are used only to score. Each run's result is appended to --log as a
JSON line, with the commit the code ran from; the table of means (one row per code, recipe,
budget and settings) is printed at the end, and can be rebuilt from a log with --table-only.
`--also cluster.KEY=VALUE` scores each trained model a second way too (a clustering setting
needs no retraining); its rows give the mean paired difference from the recipe's own way.
The data are read from ../shared/data, or from $AECLUSTER_DATA. `--jobs N` runs N (set, seed)
runs at once in separate processes of one thread each: for a machine with many cores or a GPU,
never for timings on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from aecluster.demo import digits_images
from aecluster.estimator import AECluster
from aecluster.metrics import scores
from aecluster.predict import predict
from aecluster.recipes import apply_overrides

DATA = Path(os.environ.get("AECLUSTER_DATA",
                         Path(__file__).resolve().parents[1].parent / "shared/data"))  # fmt: skip


def _npy(*parts: str) -> np.ndarray:
    return np.load(DATA.joinpath(*parts))


def load_set(name: str) -> tuple[np.ndarray, int, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Training images, number of clusters, and the labelled sets scored after training."""
    if name == "dev":
        return _npy("hw9like", "trainX.npy"), 2, {
            "dev": (_npy("hw9like", "devX.npy"), _npy("hw9like", "devY.npy")),
            "val": (_npy("hw9like", "valX.npy"), _npy("hw9like", "valY.npy")),
        }  # fmt: skip
    if name == "cifar":
        return _npy("cifar10", "trainX.npy"), 10, {
            "cifar val": (_npy("cifar10", "valX.npy"), _npy("cifar10", "valY.npy")),
        }  # fmt: skip
    images, labels = digits_images()
    return images, 10, {"digits": (images, labels)}


def run(name: str, recipe: str, budget: float | None, seed: int, settings: list[str],
        device: str = "cpu", threads: int | None = None,
        runs: Path | None = None, also: tuple[str, ...] = ()) -> dict:  # fmt: skip
    if threads:
        torch.set_num_threads(threads)
    train_images, k, scored = load_set(name)
    t0 = time.monotonic()
    model = AECluster(n_clusters=k, recipe=recipe, budget_minutes=budget, device=device,
                      random_state=seed, settings=tuple(settings))  # fmt: skip
    model.fit(train_images, run_dir=runs / f"{name}_seed{seed}" if runs else None)
    minutes = (time.monotonic() - t0) / 60
    row = {"set": name, "recipe": recipe, "budget": budget, "seed": seed, "settings": settings,
           "device": device, "minutes": round(minutes, 2), **model.train_summary_}  # fmt: skip
    t0 = time.monotonic()
    predicted = {what: model.predict(images) for what, (images, _) in scored.items()}
    row["predict_s"] = round(time.monotonic() - t0, 2)  # all scored sets together
    for what, (images, truth) in scored.items():
        # the training images are scored by their clustering in fit
        labels = model.labels_ if images is train_images else predicted[what]
        row[what] = {m: round(v, 4) for m, v in scores(truth, labels).items()}
    for setting in also:  # the same trained model clustering another way: a paired comparison
        other = apply_overrides(model.recipe_, [setting])
        for what, (images, truth) in scored.items():
            labels = predict(model.model_, other, images)
            row[f"{what}, {setting}"] = {m: round(v, 4) for m, v in scores(truth, labels).items()}
    return row


def code_version() -> str:
    """The commit the package was run from (`-dirty` with uncommitted changes): the same
    recipe and settings give other results once the code changes."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip() or "unknown"


def table(rows: list[dict]) -> str:
    """Mean +- sd over seeds of each (code, device, recipe, budget, settings) and scored set;
    rows logged before the code was recorded group as code "-"."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        key = (r.get("code", "-"), r.get("device", "cpu"), r["recipe"], r["budget"],
               " ".join(r["settings"]))  # fmt: skip
        groups.setdefault(key, []).append(r)
    out = ["| code | device | recipe | budget | settings | scored on | seeds | accuracy | NMI | "
           "paired difference | minutes |", "|---" * 11 + "|"]  # fmt: skip
    for (code, device, recipe, budget, settings), runs in groups.items():
        scored = sorted({k for r in runs for k, v in r.items() if isinstance(v, dict)})
        for what in scored:
            have = [r for r in runs if what in r]
            acc = np.array([r[what]["accuracy"] for r in have])
            nmi = np.array([r[what]["nmi"] for r in have])
            mins = np.array([r["minutes"] for r in have])
            # an --also row against the same runs scored the recipe's own way
            base = what.split(", ", 1)[0]
            diff = np.array([r[what]["accuracy"] - r[base]["accuracy"] for r in have])
            paired = f"{diff.mean():+.4f} +- {diff.std():.4f}" if base != what else "-"
            out.append(f"| {code} | {device} | {recipe} | {budget} | {settings or '-'} | {what} | "
                       f"{len(have)} | {acc.mean():.3f} +- {acc.std():.3f} | {nmi.mean():.3f} | "
                       f"{paired} | {mins.mean():.1f} |")  # fmt: skip
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--recipe", default="best")
    ap.add_argument("--budget-minutes", type=float, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--sets", nargs="+", choices=("dev", "cifar", "digits"),
                    default=["dev", "cifar", "digits"])  # fmt: skip
    ap.add_argument("--set", action="append", default=[], dest="settings")
    ap.add_argument("--log", type=Path, default=Path("protocol_runs.jsonl"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--keep-runs", type=Path, default=None,
                    help="keep each run's epoch checkpoints in DIR/SET_seedN")  # fmt: skip
    ap.add_argument("--also", action="append", default=[], metavar="cluster.KEY=VALUE",
                    help="also score each trained model clustering with this setting (paired); "
                    "the clustering fits anew on the scored images")  # fmt: skip
    args = ap.parse_args()
    if not args.table_only:
        code = code_version()
        todo = [(name, args.recipe, args.budget_minutes, seed, args.settings, args.device,
                 1 if args.jobs > 1 else None, args.keep_runs, tuple(args.also))
                for seed in args.seeds for name in args.sets]  # fmt: skip
        with ProcessPoolExecutor(args.jobs) as pool:
            for row in pool.map(run, *zip(*todo, strict=True)):
                row = {"code": code, **row}
                print(json.dumps(row), flush=True)
                with open(args.log, "a") as f:
                    f.write(json.dumps(row) + "\n")
    rows = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
    print(table(rows))


if __name__ == "__main__":
    main()
