"""A run directory: its epoch checkpoints, its metrics rows, resuming from it and pruning it.

A run directory holds `epoch_XXXX.pth` (model, heads and optimizer) and `metrics.jsonl` (one
row per checkpoint: epoch, loss, reconstruction MSE over the training images and, if validation
data was given, val scores — recorded for reporting, never used to steer training). Each
checkpoint holds the metric rows of its run so far, so a kill between writing it and updating
metrics.jsonl loses nothing.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from tqdm import tqdm

from aecluster.checkpoint import load_checkpoint
from aecluster.errors import InputError
from aecluster.selection import choose_checkpoint

CHECKPOINT_RE = re.compile(r"epoch_(\d+)\.pth$")


def epoch_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """The run's epoch checkpoints as (epoch, path), oldest first."""
    found = [(int(m.group(1)), p) for p in run_dir.glob("epoch_*.pth")
             if (m := CHECKPOINT_RE.search(p.name))]  # fmt: skip
    return sorted(found)


def metrics_path(checkpoint: str | os.PathLike) -> Path:
    """Where a final checkpoint's copy of its run's per-checkpoint metrics lives."""
    return Path(checkpoint).with_suffix(".metrics.jsonl")


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """Rows of a run directory's metrics.jsonl, or of a `.metrics.jsonl` file given directly."""
    path = Path(run_dir)
    path = path if path.suffix == ".jsonl" else path / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            row = "bad"
        if row is not None and not (isinstance(row, dict) and isinstance(row.get("epoch"), int)):
            raise InputError(f"{path}: line {i} is not a metrics row")
        rows += [row] if row is not None else []
    return rows


def default_run_dir(out: Path) -> Path:
    """Where a run's epoch checkpoints go unless told: beside the final checkpoint."""
    return out.with_name(out.name + ".run")


def training_outputs(out: Path, run_dir: Path) -> list[Path]:
    """Every file a training run writes or replaces, for the check that none is an input."""
    epochs = [p for _, p in epoch_checkpoints(run_dir)] if run_dir.is_dir() else []
    return [out, metrics_path(out), run_dir / "metrics.jsonl", *epochs]


def _comparable(recipe: dict) -> dict:
    """The recipe minus what a resumed run may change: its time budget, checkpoint spacing,
    fine-tuning, BatchNorm recalibration and clustering method (which run after the last
    checkpoint)."""
    after = ("budget_minutes", "checkpoint_every", "recalibrate_batchnorm")
    train = {k: v for k, v in recipe["train"].items() if k not in after}
    cluster = {**recipe["cluster"], "method": None}
    return {**recipe, "name": None, "description": None, "train": train, "cluster": cluster,
            "finetune": None}  # fmt: skip


def _first_difference(a: object, b: object, key: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{key}.{k}" if key else k)
    return f"{key} = {a!r} there, {b!r} here"


def resume(run_dir: Path, recipe: dict, data_id: str) -> dict | None:
    """The latest readable epoch checkpoint of `run_dir`, or None if there is none. An
    unreadable checkpoint is set aside as `.corrupt`, with a warning, and the one before it is
    used; one of other images or of another recipe is refused."""
    for _, path in reversed(epoch_checkpoints(run_dir)):
        try:
            state = load_checkpoint(path)
        except InputError as e:
            path.replace(path.with_name(path.name + ".corrupt"))
            tqdm.write(f"warning: {e}; set aside, resuming from an earlier checkpoint",
                       file=sys.stderr)  # fmt: skip
            continue
        if state.get("data") != data_id:
            raise InputError(
                f"{run_dir}: holds a run on other images; use a new run directory "
                "(--run-dir) or delete it"
            )
        if _comparable(state["recipe"]) != _comparable(recipe):
            difference = _first_difference(_comparable(state["recipe"]), _comparable(recipe))
            raise InputError(
                f"{run_dir}: holds a run of another recipe ({difference}); "
                "use a new run directory (--run-dir) or delete it"
            )
        return state
    return None


def prune_checkpoints(run_dir: Path, metrics: list[dict], select_cfg: dict) -> None:
    """Delete the epoch checkpoints the run no longer needs: all but the latest (to resume)
    and the one the recipe's selection rule would choose now."""
    saved = dict(epoch_checkpoints(run_dir))
    keep = {max(saved), choose_checkpoint([r for r in metrics if r["epoch"] in saved], select_cfg)}
    for epoch, path in saved.items():
        if epoch not in keep:
            path.unlink(missing_ok=True)
