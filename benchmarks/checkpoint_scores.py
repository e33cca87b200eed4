"""Val scores of every epoch checkpoint of a training run, computed after the run.

    python benchmarks/checkpoint_scores.py RUN_DIR --data-dir ../shared/data/hw9like \
        [--merge checkpoints/baseline.metrics.jsonl]

For a recipe whose clustering is slow (the baseline's KernelPCA -> t-SNE takes about a minute
per checkpoint on 2 cores), scoring val during training (`--val-x/--val-y`) would spend the
30-minute budget on reporting; this scores the kept checkpoints (`--keep-checkpoints`) afterwards,
exactly as training would have (valX clustered together with trainX by the checkpoint's own
pipeline). Labels are used only to report. `--merge` adds the val columns to the rows of a
metrics file with the same epochs (written atomically) for the report's checkpoint figure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aecluster.checkpoint import load_checkpoint, model_from_state
from aecluster.data import load_images, load_labels
from aecluster.files import write_text_atomic
from aecluster.metrics import scores
from aecluster.predict import cluster_codes, embed
from aecluster.runs import epoch_checkpoints, read_metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--merge", type=Path, help="a metrics .jsonl file to add the val columns to")
    args = ap.parse_args()
    train = load_images(args.data_dir / "trainX.npy")
    val_x = load_images(args.data_dir / "valX.npy")
    val_y = load_labels(args.data_dir / "valY.npy", len(val_x))
    found = {}
    print("| epoch | val accuracy | val NMI | val ARI |\n|---|---|---|---|")
    for epoch, path in epoch_checkpoints(args.run_dir):
        model, recipe = model_from_state(load_checkpoint(path), path)
        labels = cluster_codes(embed(model, val_x), recipe, context=embed(model, train))
        found[epoch] = {f"val_{k}": v for k, v in scores(val_y, labels).items()}
        row = found[epoch]
        print(f"| {epoch} | {row['val_accuracy']:.3f} | {row['val_nmi']:.3f} | "
              f"{row['val_ari']:.3f} |", flush=True)  # fmt: skip
    if args.merge:
        rows = [{**r, **found.get(r["epoch"], {})} for r in read_metrics(args.merge)]
        write_text_atomic(args.merge, "".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
