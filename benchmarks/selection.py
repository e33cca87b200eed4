"""How good is label-free checkpoint selection? Reads the per-checkpoint metrics of training runs.

    python benchmarks/selection.py checkpoints/improved.pth checkpoints/best.pth \
        > benchmarks/results_selection.md

Each run must have been trained with `--val-x/--val-y` (val scores recorded for reporting) and a
recipe that scores `stability`. For each run: the checkpoint the recipe chose without labels, the
last one, and the best and worst by val accuracy (which no recipe may use), plus the rank
correlation of stability with val accuracy across checkpoints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scipy.stats import spearmanr

from aecluster.checkpoint import load_checkpoint
from aecluster.runs import metrics_path, read_metrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+", type=Path)
    args = p.parse_args()
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print("| run | checkpoints | chosen (no labels) | last | best by val | worst by val "
          "| Spearman(stability, val acc) |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for path in args.checkpoints:
        rows = read_metrics(metrics_path(path))
        if not rows or "stability" not in rows[0] or "val_accuracy" not in rows[0]:
            sys.exit(f"{path}: its metrics have no stability or val accuracy")
        by_epoch = {r["epoch"]: r for r in rows}
        chosen = by_epoch[load_checkpoint(path)["selected_epoch"]]
        best = max(rows, key=lambda r: r["val_accuracy"])
        worst = min(rows, key=lambda r: r["val_accuracy"])
        rho = spearmanr([r["stability"] for r in rows], [r["val_accuracy"] for r in rows])[0]
        cell = lambda r: f"epoch {r['epoch']}: {r['val_accuracy']:.3f}"  # noqa: E731
        print(f"| `{path.name}` | {len(rows)} | **{cell(chosen)}** | {cell(rows[-1])} "
              f"| {cell(best)} | {cell(worst)} | {rho:.2f} |")  # fmt: skip
    print("\nPer checkpoint (epoch: stability / val accuracy):\n")
    for path in args.checkpoints:
        rows = read_metrics(metrics_path(path))
        cells = ", ".join(f"{r['epoch']}: {r['stability']:.2f} / {r['val_accuracy']:.3f}"
                          for r in rows)  # fmt: skip
        print(f"- `{path.name}`: {cells}")


if __name__ == "__main__":
    main()
