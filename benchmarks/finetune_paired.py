"""A fine-tuning setting judged on the same autoencoder checkpoints: the epochs are left as they
were, so what differs is fine-tuning's alone (and seeds do not move the comparison).

    python benchmarks/protocol.py --recipe best --budget-minutes 10 --keep-runs RUNS ...
    python benchmarks/finetune_paired.py RUNS --log benchmarks/protocol_runs.jsonl \
        --set loss.reconstruct_share=1.0

    python benchmarks/finetune_paired.py RUNS --log LOG --other-epochs finished

For each protocol run kept in RUNS/SET_seedN, its last epoch's checkpoint is fine-tuned for the
fine-tuning epochs its run planned (read from the run's row of --log), without a budget: once
with the run's recipe and once with the --set settings, or, with `--other-epochs finished`, for
as many epochs as the run finished (a filled budget may run more than it planned). Both are
scored as the protocol scores (labels only to score). Prints a markdown table of the accuracies
and the paired differences.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from protocol import load_set

from aecluster.checkpoint import load_checkpoint, model_from_state
from aecluster.finetune import scan_finetune
from aecluster.metrics import scores
from aecluster.predict import predict
from aecluster.recipes import apply_overrides
from aecluster.runs import epoch_checkpoints
from aecluster.training import recalibrate_as_asked, restore_as_trained


def finetuned_accuracy(state: dict, epochs: int, settings: list[str], name: str) -> dict:
    """Accuracy on each scored set after `epochs` of fine-tuning `state` with `settings`."""
    model, recipe = model_from_state(state)
    recipe = apply_overrides(recipe, settings)
    recipe = {**recipe, "finetune": {**recipe["finetune"], "epochs": epochs}}
    images, _, scored = load_set(name)
    layout = restore_as_trained(model, images, recipe)  # as training does around fine-tuning
    head, _ = scan_finetune(model, images, recipe, layout, progress=False)
    recalibrate_as_asked(model, images, recipe, layout)
    final = {**recipe, "cluster": {**recipe["cluster"], "method": head}}
    model.eval()
    return {
        what: scores(y, predict(model, final, x))["accuracy"] for what, (x, y) in scored.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path)
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--set", action="append", default=[], dest="settings")
    ap.add_argument("--other-epochs", choices=("planned", "finished"), default="planned")
    args = ap.parse_args()
    if not args.settings and args.other_epochs == "planned":
        ap.error("nothing to compare: give --set or --other-epochs finished")
    rows = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
    other_name = " ".join(args.settings) or "the epochs finished"
    print(f"| run | epochs + fine-tuning | scored on | planned | with {other_name} | difference |"
          "\n|---|---|---|---|---|---|")  # fmt: skip
    diffs: dict[str, list[float]] = {}
    for run_dir in sorted(p for p in args.runs.iterdir() if p.is_dir()):
        name, seed = run_dir.name.rsplit("_seed", 1)
        row = [r for r in rows if r["set"] == name and r["seed"] == int(seed)][-1]
        epoch, path = max(epoch_checkpoints(run_dir))
        state = load_checkpoint(path)
        ft = row["finetune_epochs_planned"]
        other_ft = row["finetune_epochs"] if args.other_epochs == "finished" else ft
        base = finetuned_accuracy(state, ft, [], name)
        same = other_ft == ft and not args.settings  # fine-tuning is deterministic
        other = base if same else finetuned_accuracy(state, other_ft, args.settings, name)
        for what in base:
            d = other[what] - base[what]
            diffs.setdefault(what, []).append(d)
            print(f"| {run_dir.name} | {epoch} + {ft} / {other_ft} | {what} | {base[what]:.4f} | "
                  f"{other[what]:.4f} | {d:+.4f} |", flush=True)  # fmt: skip
    for what, d in diffs.items():
        print(f"\n{what}: mean difference {np.mean(d):+.4f} +- {np.std(d):.4f} over {len(d)} runs")


if __name__ == "__main__":
    main()
