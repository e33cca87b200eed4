"""The autoencoder's training loop: plain, seeded, resumable, minimising the recipe's objective
(see `objective`) with a checkpoint every k epochs into a run directory (see `runs`), then the
chosen checkpoint fine-tuned (see `finetune`).

Rerunning with the same run directory resumes from its last checkpoint. Each epoch seeds its own
random generator from (seed, epoch), so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from aecluster.checkpoint import load_checkpoint, on_cpu, save_checkpoint
from aecluster.data import (
    as_images,
    batch_loader,
    fingerprint,
    iter_batches,
    to_tensor,
)
from aecluster.device import autocast, memory_layout, resolve_device, to_device
from aecluster.distributed import Group, process_group, wrap
from aecluster.errors import InputError
from aecluster.files import (
    check_output_folder,
    new_folder,
    refuse_overwriting_inputs,
    remove_partial_writes,
    write_text_atomic,
)
from aecluster.finetune import scan_finetune
from aecluster.metrics import scores
from aecluster.models import AutoEncoder, build_model
from aecluster.objective import Objective
from aecluster.optim import LR_SCHEDULES, build_optimizer
from aecluster.planner import BudgetClock, Plan, plan, recipe_plan
from aecluster.predict import (
    cluster_codes,
    embed,
    fit_cluster_pipeline,
    n_tta_views,
    reconstruction_errors,
)
from aecluster.progress import progress_bar
from aecluster.recipes import complete
from aecluster.runs import (
    default_run_dir,
    epoch_checkpoints,
    metrics_path,
    prune_checkpoints,
    resume,
    training_outputs,
)
from aecluster.seeding import TrainingDiverged, check_finite, seed_everything
from aecluster.selection import choose_checkpoint, needs_stability, partition_stability


def rank_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """The augmentation generator of process `rank` > 0 in a multi-process run (process 0 uses
    the epoch's own generator, so one process reproduces a single-process run)."""
    return torch.Generator().manual_seed((seed * 100_003 + epoch) * 1_009 + rank)


@dataclass
class Validation:
    images: np.ndarray
    labels: np.ndarray


def _metrics_sample(images: np.ndarray, recipe: dict) -> np.ndarray:
    """Above `cluster.fit_sample` images, a seeded sample of that many (the same at every
    checkpoint), so a checkpoint of a large set costs what one of a small set does."""
    limit, seed = recipe["cluster"]["fit_sample"], recipe["cluster"]["seed"]
    if len(images) <= limit:
        return images
    rng = np.random.default_rng(seed)
    return images[np.sort(rng.choice(len(images), limit, replace=False))]


def checkpoint_metrics(model: AutoEncoder, recipe: dict, images: np.ndarray) -> dict:
    """What the recipe's checkpoint selection reads: reconstruction error, and the partitions'
    stability where the recipe selects by it."""
    images = _metrics_sample(images, recipe)
    row = {"recon_mse": float(reconstruction_errors(model, images).mean())}
    select = recipe["select"]
    if needs_stability(select):
        row["stability"] = partition_stability(
            embed(model, images), recipe["cluster"]["n_clusters"], select["reduce"],
            select["resamples"], seed=recipe["cluster"]["seed"],
        )  # fmt: skip
    model.train()
    return row


@torch.no_grad()
def recalibrate_batchnorm(
    model: AutoEncoder, images: np.ndarray, batch_size: int, layout: torch.memory_format
) -> None:
    """Set every BatchNorm layer's running statistics, in place, to their average over the
    unaugmented `images` (whole forward passes, so the decoder's too), and leave the model in
    eval mode. Training leaves running averages over augmented views (crops at another scale,
    colour jitter, grey), which the clean images the model embeds do not share."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if norms:
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches
        device = next(model.parameters()).device
        model.train()
        for x in iter_batches(images, batch_size):
            if len(x) > 1:  # BatchNorm needs 2 images
                model(to_device(x, device, layout))
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
    model.eval()


def recalibrate_as_asked(
    model: AutoEncoder, images: np.ndarray, recipe: dict, layout: torch.memory_format
) -> None:
    """`recalibrate_batchnorm` where the recipe asks for it (`train.recalibrate_batchnorm`), on
    the images the checkpoint metrics use (a seeded sample above `cluster.fit_sample`)."""
    if recipe["train"]["recalibrate_batchnorm"]:
        sample = _metrics_sample(images, recipe)
        recalibrate_batchnorm(model, sample, recipe["train"]["batch_size"], layout)


def restore_as_trained(model: AutoEncoder, images: np.ndarray, recipe: dict) -> torch.memory_format:
    """Make a model loaded from a checkpoint what training makes of it after its epochs: in the
    recipe's memory layout, BatchNorm recalibrated on `images` where the recipe asks (an epoch
    checkpoint holds the augmented views' statistics). Returns the layout fine-tuning needs."""
    layout = memory_layout(recipe["train"]["channels_last"])
    model.to(memory_format=layout)
    recalibrate_as_asked(model, images, recipe, layout)
    return layout


def embed_sample(
    model: AutoEncoder, images: np.ndarray, sample: int = 1024
) -> tuple[float, np.ndarray]:
    """Measured minutes to embed one image, and the codes: the first `sample` images, timed
    after a warm-up."""
    embed(model, images[:2])
    t0 = time.monotonic()
    codes = embed(model, images[:sample])
    model.train()
    return (time.monotonic() - t0) / 60 / len(codes), codes


def clustering_minutes(recipe: dict, codes: np.ndarray, n: int, fitted: int | None = None) -> float:
    """Expected minutes of the recipe's clustering of `n` codes, timed on the first half and on
    all of `codes` (a sample) and extrapolated: the fit grows as size**p, p measured from the
    two timings (clipped to 0.5-2: SCAN's steps are a fixed cost, KernelPCA's kernel is
    quadratic), on `fitted` codes (default: at most `cluster.fit_sample`); the rest are placed
    at the measured cost per code."""
    fitted = min(n, recipe["cluster"]["fit_sample"]) if fitted is None else fitted
    half = codes[: len(codes) // 2]
    seconds = []
    for part in (half, codes):
        t0 = time.monotonic()
        pipeline = fit_cluster_pipeline(part, recipe)
        seconds.append(time.monotonic() - t0)
    p = np.clip(np.log(max(seconds[1], 1e-6) / max(seconds[0], 1e-6)) / np.log(2), 0.5, 2.0)
    fit = seconds[1] * (fitted / len(codes)) ** p
    t0 = time.monotonic()
    pipeline.predict(codes)
    place = (n - fitted) * (time.monotonic() - t0) / len(codes)
    return (fit + place) / 60


def minutes_after_epochs(
    model: AutoEncoder, images: np.ndarray, recipe: dict, chooses_clusters: bool,
    clusters_after: bool,
) -> tuple[float, float]:  # fmt: skip
    """Expected minutes of what follows the autoencoder's epochs, timed on a sample of `images`
    with `model` (its speed, not its weights, matters): all of it, and the part before
    fine-tuning.

    It grows with the number of images: every image is embedded again (to choose the number
    of clusters, before fine-tuning, by a caller that clusters them) and clustered (SCAN's heads
    before fine-tuning, or the caller's clustering: KernelPCA, t-SNE; a fine-tuned head costs
    nothing). On a large set that takes minutes. A BatchNorm recalibration is a forward pass
    (encoder and decoder: about two embeddings) of at most cluster.fit_sample images, before
    and after fine-tuning.
    """
    n, cluster = len(images), recipe["cluster"]
    finetunes = bool(recipe["finetune"]["epochs"])
    embeds_after = finetunes + chooses_clusters + clusters_after
    recalibrations = recipe["train"]["recalibrate_batchnorm"] * (1 + finetunes)
    if not (embeds_after or recalibrations):
        return 0.0, 0.0
    per_image, codes = embed_sample(model, images)
    clustering = 0.0
    if (finetunes or clusters_after) and len(codes) >= 4 * cluster["n_clusters"]:
        clustering = clustering_minutes(recipe, codes, n, fitted=n if finetunes else None)
    # the caller embeds every image's test views (cluster.tta)
    caller = clusters_after * n * per_image * n_tta_views(cluster["tta"])
    recalibrating = recalibrations * 2 * min(n, cluster["fit_sample"]) * per_image
    after = (embeds_after - clusters_after) * n * per_image + caller + clustering
    # before fine-tuning: all of it but the caller's embedding and the last recalibration
    before_finetune = after - caller + recalibrating / 2 if finetunes else 0.0
    return after + recalibrating, before_finetune


def validation_scores(
    model: AutoEncoder, recipe: dict, images: np.ndarray, val: Validation
) -> dict:
    """Labelled images' scores of one checkpoint (reporting only), clustered together with the
    training images as hw9_best.sh clusters them."""
    tta = recipe["cluster"]["tta"]
    context = embed(model, _metrics_sample(images, recipe), tta=tta)
    labels = cluster_codes(embed(model, val.images, tta=tta), recipe, context=context)
    model.train()
    return {f"val_{k}": v for k, v in scores(val.labels, labels).items()}


@dataclass(frozen=True)
class RunOptions:
    """`train`'s arguments about how it runs and reports, as it passes them on."""

    val: Validation | None
    progress: bool
    keep_checkpoints: bool
    choose_clusters: Callable[[np.ndarray], int] | None
    workers: int
    clusters_after: bool


def train(
    images: np.ndarray,
    recipe: dict,
    out: str | os.PathLike,
    run_dir: str | os.PathLike | None = None,
    val: Validation | None = None,
    budget_minutes: float | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
    keep_checkpoints: bool = False,
    choose_clusters: Callable[[np.ndarray], int] | None = None,
    workers: int = 0,
    clusters_after: bool = False,
) -> dict:
    """Train the recipe's autoencoder on images; write the final checkpoint to `out`.

    `images` may be a memory-mapped array: batches are read from it by a loader with `workers`
    processes, never the whole set into RAM, with the same result as from an in-RAM array.
    Under `torchrun` each process trains on its share of every batch (see `distributed`);
    process 0 writes the files and returns the summary, the others return theirs after the
    autoencoder's epochs.

    Returns a summary: epochs run, minutes, whether the time budget stopped it, final loss.
    Epoch checkpoints the recipe no longer needs are deleted unless `keep_checkpoints`.
    `choose_clusters` (a label-free rule, e.g. `selection.choose_n_clusters`) sets the number
    of clusters from the chosen checkpoint's codes, before the fine-tuning phase.
    `clusters_after`: the caller embeds every image after training to cluster them (as
    `AECluster.fit` does), so a time budget keeps room for that pass too.
    An error leaves no empty run folder; the finished epoch checkpoints stay.
    """
    started = time.monotonic()  # the budget covers the whole call, its setup included
    images = as_images(images, "training images")
    recipe = complete(recipe)
    if len(images) < 2:
        raise InputError(f"training needs at least 2 images, got {len(images)}")
    if recipe["finetune"]["epochs"] and recipe["cluster"]["method"]["name"] != "scan":
        raise InputError("finetune needs cluster.method = {name = 'scan'} to start from")
    budget = budget_minutes if budget_minutes is not None else recipe["train"]["budget_minutes"]
    out = Path(out)
    run_dir = Path(run_dir) if run_dir else default_run_dir(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"{run_dir}: the run folder exists as a file")
    check_output_folder(run_dir)
    memmapped = [getattr(a, "filename", None) for a in (images, val and val.images)]
    refuse_overwriting_inputs(training_outputs(out, run_dir), memmapped)
    data_id = fingerprint(images)
    device = resolve_device(device)
    options = RunOptions(val, progress, keep_checkpoints, choose_clusters, workers, clusters_after)
    clock = BudgetClock(started, budget)
    with process_group(device) as group, new_folder(run_dir):
        return _train(images, recipe, out, run_dir, data_id, group.device(device), group, clock,
                      options)  # fmt: skip


def _train(
    images: np.ndarray, recipe: dict, out: Path, run_dir: Path, data_id: str,
    device: torch.device, group: Group, clock: BudgetClock, options: RunOptions,
) -> dict:  # fmt: skip
    cfg, val, budget = recipe["train"], options.val, clock.budget
    progress = options.progress and group.is_main
    if group.is_main:
        remove_partial_writes(run_dir)
    torch.use_deterministic_algorithms(True, warn_only=True)

    seed_everything(cfg["seed"])
    model = build_model(recipe["model"]["name"], **recipe["model"]["params"])
    layout = memory_layout(cfg["channels_last"])
    objective = Objective(model, recipe, layout).to(device, memory_format=layout)
    optimizer = build_optimizer(objective.parameters(), cfg)

    start_epoch, metrics = 0, []
    resumed = group.broadcast(resume(run_dir, recipe, data_id) if group.is_main else None)
    if resumed is not None:
        objective.load_state_dict(resumed["objective"])
        optimizer.load_state_dict(resumed["optimizer"])
        start_epoch, clock.prior = resumed["epoch"], resumed["train_minutes"]
        metrics = resumed["metrics"]

    step = wrap(objective, group, device)
    n, bs = len(images), cfg["batch_size"]
    minutes = clock.minutes
    last = {"epoch": start_epoch, "loss": float("nan")}
    snapshot = None
    schedule = recipe_plan(recipe)
    chooses_clusters = options.choose_clusters is not None
    after_minutes, before_finetune = (
        minutes_after_epochs(model, images, recipe, chooses_clusters, options.clusters_after)
        if budget else (0.0, 0.0)
    )  # fmt: skip
    clock.plan_ends(after_minutes, before_finetune)
    if start_epoch and budget:  # resumed: plan the rest from the speed so far
        epoch_minutes = clock.prior / start_epoch
        schedule = plan(recipe, budget, clock.prior, start_epoch, epoch_minutes,
                        after_minutes=after_minutes)  # fmt: skip

    def save(epoch: int, state: dict, loss: float) -> None:
        # the metrics so far go into the checkpoint: one file, written atomically, holds both
        row = {"epoch": epoch, "loss": loss, "minutes": round(minutes(), 3)}
        row.update(checkpoint_metrics(model, recipe, images))
        if val is not None:
            t_scoring = time.monotonic()
            row.update(validation_scores(model, recipe, images, val))
            clock.excluded += (time.monotonic() - t_scoring) / 60
        metrics.append(row)
        path = run_dir / f"epoch_{epoch:04d}.pth"
        save_checkpoint(path, {**state, "epoch": epoch, "train_minutes": minutes(), "loss": loss,
                               "data": data_id, "metrics": metrics,
                               "world_size": group.size})  # fmt: skip
        write_text_atomic(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in metrics))
        if not options.keep_checkpoints:
            prune_checkpoints(run_dir, metrics, recipe["select"])

    if budget and progress:
        most = "as many epochs as fit" if cfg["fill_budget"] else f"at most {cfg['epochs']} epochs"
        tqdm.write(f"plan: {most} in the first {clock.end:.3g} of {budget:g} min, re-planned "
                   "after each epoch from the measured speed")  # fmt: skip
    objective.train()
    epoch, durations, mark = start_epoch, [], minutes()
    try:
        while epoch < schedule.epochs:
            epochs = schedule.epochs
            seed_everything(cfg["seed"] * 100_003 + epoch)
            g = torch.Generator().manual_seed(cfg["seed"] * 100_003 + epoch)
            for param_group in optimizer.param_groups:
                param_group["lr"] = cfg["lr"] * LR_SCHEDULES[cfg["lr_schedule"]](epoch, epochs)
            order = torch.randperm(n, generator=g)
            # every process draws the same order; each takes its share of every global batch
            # (a batch too small to give each at least 2 images is dropped: BatchNorm needs 2)
            batches = [group.shard(order[i : i + bs]) for i in range(0, n, bs)
                       if len(order[i : i + bs]) >= 2 * group.size]  # fmt: skip
            g_views = g if group.is_main else rank_generator(cfg["seed"], epoch, group.rank)
            loader = batch_loader(images, batches, options.workers)
            bar = progress_bar(loader, desc=f"epoch {epoch + 1}/{epochs}", total=len(batches),
                               enabled=progress, leave=False)  # fmt: skip
            total, seen, out_of_time = _epoch_steps(step, optimizer, bar, g_views, cfg["precision"],
                                                    device, group, clock, epoch)  # fmt: skip
            counted = group.sum(seen) if out_of_time else n
            last = {"epoch": epoch + 1, "loss": group.sum(total) / counted}
            snapshot = {
                "recipe": recipe,
                "model": on_cpu(model.state_dict()),
                "objective": on_cpu(objective.state_dict()),
                "optimizer": on_cpu(optimizer.state_dict()),
            }
            # the next epochs may be slower than the average when the CPU is shared: assume the
            # slower of the average and the average of the last checkpoint period
            durations.append(minutes() - mark)  # since the last plan: checkpoints included
            mark = minutes()
            recent = durations[-cfg["checkpoint_every"] :]
            epoch_minutes = max(sum(durations) / len(durations), sum(recent) / len(recent))
            before, schedule = schedule, group.broadcast(
                plan(recipe, budget, minutes(), epoch + 1, epoch_minutes, schedule, after_minutes)
            )  # fmt: skip
            if out_of_time:  # this partial epoch is the last, and no time is left to fine-tune
                schedule = Plan(epoch + 1, 0)
                if progress:
                    tqdm.write(f"the {budget:g}-minute budget ended within epoch {epoch + 1}, "
                               f"after {counted:.0f} of its {n} images")  # fmt: skip
            if (epoch + 1) % cfg["checkpoint_every"] == 0 or epoch + 1 == schedule.epochs:
                if group.is_main:
                    save(epoch + 1, snapshot, last["loss"])
                snapshot = None
            if progress:
                tqdm.write(f"epoch {epoch + 1}/{epochs} loss {last['loss']:.5f} "
                           f"({minutes():.1f} min)")  # fmt: skip
            if group.is_main and schedule != before:
                tqdm.write(f"plan for the {budget:g}-minute budget: "
                           f"{schedule.describe(epoch_minutes)}")  # fmt: skip
            epoch += 1
    except (KeyboardInterrupt, TrainingDiverged):
        if group.is_main:
            if snapshot is not None:  # the last finished epoch is kept
                save(last["epoch"], snapshot, last["loss"])
            # an interrupt can land between a temp file's creation and its cleanup
            remove_partial_writes(run_dir)
        raise

    if not group.is_main:  # process 0 alone selects, fine-tunes and writes the final model
        return {"rank": group.rank, "world_size": group.size, "epochs": last["epoch"]}
    return _select_and_finetune(model, images, recipe, out, run_dir, metrics, schedule, layout,
                                clock, options, group.size)  # fmt: skip


def _epoch_steps(
    step: nn.Module, optimizer: torch.optim.Optimizer, bar: tqdm, g: torch.Generator,
    precision: str, device: torch.device, group: Group, clock: BudgetClock, epoch: int,
) -> tuple[float, int, bool]:  # fmt: skip
    """One epoch's optimiser steps over the batches `bar` yields; returns the loss summed over
    images, how many images were seen, and whether the budget ended the epoch early."""
    total, seen = 0.0, 0
    for rows in bar:
        # an epoch longer than the budget (a slow CPU, a huge set) ends where the budget does;
        # the budget always holds
        if seen and group.broadcast(clock.past_end()):
            return total, seen, True
        seen += len(rows)
        with autocast(device, precision):
            terms = step(to_tensor(rows.numpy()), g)
        check_finite(terms["loss"], f"epoch {epoch + 1}")
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        total += terms["loss"].item() * len(rows)
        bar.set_postfix({k: f"{v.item():.4f}" for k, v in terms.items()})
    return total, seen, False


def _select_and_finetune(
    model: AutoEncoder, images: np.ndarray, recipe: dict, out: Path, run_dir: Path,
    metrics: list[dict], schedule: Plan, layout: torch.memory_format, clock: BudgetClock,
    options: RunOptions, world_size: int,
) -> dict:  # fmt: skip
    """After the epochs: choose a saved checkpoint without labels, recalibrate, set the number
    of clusters if asked, fine-tune with SCAN for the planned epochs, write the final model."""
    cfg, progress = recipe["train"], options.progress
    saved = dict(epoch_checkpoints(run_dir))
    if not saved:
        raise InputError(f"{run_dir}: no epoch finished, nothing to save")
    last_state = load_checkpoint(saved[max(saved)])
    chosen = choose_checkpoint([r for r in metrics if r["epoch"] in saved], recipe["select"])
    state = load_checkpoint(saved[chosen])
    final_recipe, t_finetune = recipe, time.monotonic()
    model.load_state_dict(state["model"])  # on the training device
    recalibrate_as_asked(model, images, recipe, layout)  # before the codes are clustered
    if options.choose_clusters is not None:
        k = options.choose_clusters(embed(model, images))
        final_recipe = recipe = {**recipe, "cluster": {**recipe["cluster"], "n_clusters": k}}
    recipe = {**recipe, "finetune": {**recipe["finetune"], "epochs": schedule.finetune_epochs}}
    finetuned = 0
    if recipe["finetune"]["epochs"]:
        # what precedes fine-tuning is estimated on a sample, and fine-tuning is planned in
        # whole epochs: a filled budget gives what they leave to more fine-tuning epochs
        another_fits = clock.fits if cfg["fill_budget"] else (lambda minutes: False)
        head, finetuned = scan_finetune(model, images, recipe, layout, progress, options.workers,
                                        clock.past_finetune_end, another_fits)  # fmt: skip
        ran = max(finetuned, schedule.finetune_epochs)  # what reproduces this run
        final_recipe = {**recipe, "cluster": {**recipe["cluster"], "method": head},
                        "finetune": {**recipe["finetune"], "epochs": ran}}  # fmt: skip
        recalibrate_as_asked(model, images, recipe, layout)
    summary = {
        "n_clusters": recipe["cluster"]["n_clusters"],
        "epochs": last_state["epoch"],
        "train_minutes": round(last_state["train_minutes"], 2),
        "finetune_minutes": round((time.monotonic() - t_finetune) / 60, 2),
        "stopped_by_budget": schedule.epochs < cfg["epochs"]
        or finetuned < schedule.finetune_epochs,
        "finetune_epochs": finetuned,
        "finetune_epochs_planned": schedule.finetune_epochs,
        "selected_epoch": chosen,
        "loss": state["loss"],
        "world_size": world_size,
    }
    save_checkpoint(out, {"recipe": final_recipe, "model": on_cpu(model.state_dict()), **summary})
    write_text_atomic(metrics_path(out), (run_dir / "metrics.jsonl").read_text())
    return summary
