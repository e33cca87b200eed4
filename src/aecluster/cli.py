"""Command line: `aecluster cluster | train | predict | evaluate | report | demo`.

A thin layer over the library: each command checks its paths, reads its inputs, calls the same
functions the Python API uses (`AECluster`, `train`, `predict`) and writes its outputs.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from aecluster.errors import AeclusterError, InputError
from aecluster.files import os_reason

EPILOG = "Errors print one line and exit with code 2; --debug shows the traceback instead."
SOURCES = (
    "a folder of images (searched recursively), a .txt list of image paths, a glob "
    "('photos/**/*.jpg'), an image file, or an .npy array of (N, H, W, 3) images"
)


def clusters_arg(text: str) -> int | str:
    """`--clusters`: a number, or `auto`."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def _progress(args: argparse.Namespace) -> bool:
    return not args.quiet


def _read(source: str, args: argparse.Namespace, cache: Path | str | None = None):
    from aecluster.sources import read_images

    return read_images(source, strict=getattr(args, "strict", False), progress=_progress(args),
                       cache=cache)  # fmt: skip


def _inputs(source: str, data) -> list:
    """The files a command reads from `source`, which no output may replace."""
    return [source, *(data.files or [])]


def _val(args: argparse.Namespace):
    from aecluster.data import load_labels
    from aecluster.training import Validation

    if not (args.val_x or args.val_y):
        return None
    if not (args.val_x and args.val_y):
        raise InputError("--val-x and --val-y go together")
    images = _read(args.val_x, args).images
    return Validation(images, load_labels(args.val_y, len(images)))


def _clustering_overrides(recipe: dict, overrides: list[str]) -> dict:
    """A checkpoint's recipe with --set changes to its clustering (the model is fixed)."""
    from aecluster.recipes import apply_overrides

    for item in overrides:
        if not item.startswith("cluster."):
            raise InputError(f"--set {item}: a trained checkpoint takes only cluster.* settings")
    return apply_overrides(recipe, overrides)


def _n_clusters(value: int | None) -> int | None:
    from aecluster.schema import Int

    if value is not None:
        Int(2, 10_000).check(value, "--n-clusters")
    return value


def _write_labels(out: str, data, labels: np.ndarray, proba: np.ndarray, overwrite: bool) -> None:
    """`id,label` for an array or .npy (the homework's format), else `path,cluster,confidence`."""
    from aecluster.predict import write_clusters, write_predictions

    if data.paths is None:
        write_predictions(out, labels, overwrite=overwrite)
    else:
        confidence = proba[np.arange(len(labels)), labels]
        write_clusters(out, data.paths, labels, confidence, overwrite=overwrite)


def cmd_train(args: argparse.Namespace) -> int:
    from aecluster.distributed import launched_group
    from aecluster.files import check_output_path, refuse_overwriting_inputs
    from aecluster.recipes import apply_overrides, load_recipe
    from aecluster.runs import default_run_dir, training_outputs
    from aecluster.schema import Int
    from aecluster.training import train

    clusters = [f"cluster.n_clusters={args.clusters}"] if args.clusters is not None else []
    recipe = apply_overrides(load_recipe(args.recipe), [*clusters, *args.set])
    Int(0, 64).check(args.workers, "--workers")
    out = check_output_path(args.out, overwrite=args.overwrite)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(out)
    recipe_file = args.recipe if Path(args.recipe).suffix else None
    refuse_overwriting_inputs(
        training_outputs(out, run_dir), [args.data, args.val_x, args.val_y, recipe_file]
    )
    data = _read(args.data, args, cache=run_dir)
    refuse_overwriting_inputs(training_outputs(out, run_dir), _inputs(args.data, data))
    summary = train(
        data.images,
        recipe,
        out,
        run_dir=run_dir,
        val=_val(args),
        budget_minutes=args.budget_minutes,
        progress=_progress(args),
        device=args.device,
        keep_checkpoints=args.keep_checkpoints,
        workers=args.workers,
    )
    if launched_group().is_main:
        print(json.dumps({"checkpoint": str(out), "recipe": recipe["name"], **summary}))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from aecluster.checkpoint import load_model
    from aecluster.device import resolve_device
    from aecluster.files import check_output_path, refuse_overwriting_inputs
    from aecluster.predict import cluster_images
    from aecluster.sources import export_clusters

    t0 = time.monotonic()
    n_clusters = _n_clusters(args.n_clusters)
    check_output_path(args.out, overwrite=args.overwrite)
    refuse_overwriting_inputs([args.out], [args.data, args.checkpoint])
    model, recipe = load_model(args.checkpoint)
    recipe = _clustering_overrides(recipe, args.set)
    data = _read(args.data, args, cache=args.cache)
    refuse_overwriting_inputs([args.out], _inputs(args.data, data))
    model.to(resolve_device(args.device))
    pipe = cluster_images(model, data.images, recipe, n_clusters, _progress(args))
    _write_labels(args.out, data, pipe.labels_, pipe.proba_, args.overwrite)
    if args.export:
        export_clusters(args.export, data, pipe.labels_, copy=args.copy)
    sizes = np.bincount(pipe.labels_).tolist()
    skipped = f", {len(data.skipped)} files skipped" if data.skipped else ""
    print(
        f"wrote {len(pipe.labels_)} predictions to {args.out} (cluster sizes {sizes}"
        f"{skipped}, {time.monotonic() - t0:.1f} s)"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from aecluster.data import load_labels
    from aecluster.metrics import scores
    from aecluster.predict import read_predictions

    if args.predictions:
        if not args.val_y:
            raise InputError("--predictions needs --val-y (the true labels)")
        labels = read_predictions(args.predictions)
        result = scores(load_labels(args.val_y, len(labels)), labels)
    else:
        from aecluster.checkpoint import load_model
        from aecluster.device import resolve_device
        from aecluster.predict import cluster_codes, embed, reconstruction_errors

        if not (args.checkpoint and args.val_x and args.val_y):
            raise InputError("evaluate needs --checkpoint, --val-x and --val-y (or --predictions)")
        model, recipe = load_model(args.checkpoint)
        model.to(resolve_device(args.device))
        recipe = _clustering_overrides(recipe, args.set)
        images = _read(args.val_x, args).images
        truth = load_labels(args.val_y, len(images))
        # with --data, val is clustered together with the training images, as hw9_best.sh does
        tta = recipe["cluster"]["tta"]
        context = (
            embed(model, _read(args.data, args).images, _progress(args), tta) if args.data else None
        )
        codes = embed(model, images, tta=tta)
        labels = cluster_codes(codes, recipe, _n_clusters(args.n_clusters), context)
        result = scores(truth, labels)
        result["recon_mse"] = float(reconstruction_errors(model, images).mean())
    print(json.dumps({k: round(v, 4) for k, v in result.items()}))
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    from aecluster.cluster_report import CLUSTER_REPORT_FILES, build_cluster_report
    from aecluster.device import resolve_device
    from aecluster.estimator import AECluster
    from aecluster.files import (
        check_output_folder,
        check_output_path,
        new_folder,
        refuse_overwriting_inputs,
    )
    from aecluster.sources import export_clusters, write_skipped

    t0 = time.monotonic()
    out = check_output_folder(args.out)
    csv, model, skipped = out / "clusters.csv", out / "model.pth", out / "skipped.csv"
    outputs = [csv, model, skipped, *(out / name for name in CLUSTER_REPORT_FILES)]
    for path in (csv, model):  # an earlier run's results stay unless --overwrite
        if out.is_dir():
            check_output_path(path, overwrite=args.overwrite)
    refuse_overwriting_inputs(outputs, [args.images])
    estimator = AECluster(
        n_clusters=args.clusters,
        recipe=args.recipe,
        device=args.device,
        budget_minutes=args.budget_minutes,
        random_state=args.seed,
        settings=tuple(args.set),
        strict=args.strict,
        verbose=_progress(args),
        k_range=tuple(args.k_range),
    )
    estimator._validate()
    data = _read(args.images, args, cache=out / "model.pth.run")
    refuse_overwriting_inputs(outputs, _inputs(args.images, data))
    device = resolve_device(args.device)
    print(
        f"plan: {len(data)} images ({len(data.skipped)} skipped) from {args.images} -> "
        f"{args.clusters} clusters with recipe {args.recipe!r} on {device}, training for "
        f"about {args.budget_minutes:g} min; writing {csv}, {model}, {skipped}, "
        f"{out / 'index.html'}",
        file=sys.stderr,
    )
    with new_folder(out):
        estimator.fit(data, out=model, run_dir=out / "model.pth.run")
        _write_labels(str(csv), data, estimator.labels_, estimator.proba_, True)
        write_skipped(skipped, data.skipped)
        if args.export:
            export_clusters(args.export, data, estimator.labels_, copy=args.copy)
        names = data.paths or [f"image {i}" for i in range(len(data))]
        summary, k = estimator.train_summary_, estimator.n_clusters_
        chosen = (
            f" (chosen among {args.k_range[0]}..{args.k_range[1]})" if estimator.k_scores_ else ""
        )
        header = [
            ["images", f"{args.images} ({len(data)} read, {len(data.skipped)} skipped)"],
            ["clusters", f"{k}{chosen}"],
            ["recipe", str(args.recipe)],
            [
                "training",
                f"{summary['epochs']} epochs, {summary['train_minutes']} + "
                f"{summary['finetune_minutes']} min on {device}",
            ],
            ["model", str(model)],
        ]
        page = build_cluster_report(
            out,
            data.images,
            names,
            estimator.codes_,
            estimator.labels_,
            estimator.proba_,
            estimator.embedding_,
            header,
            k_scores=estimator.k_scores_,
            seed=args.seed,
        )
    result = {
        "images": len(data),
        "skipped": len(data.skipped),
        "clusters": k,
        "sizes": np.bincount(estimator.labels_, minlength=k).tolist(),
        "csv": str(csv),
        "report": str(page),
        "model": str(model),
        "minutes": round((time.monotonic() - t0) / 60, 2),
    }
    print(json.dumps(result))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from aecluster.demo import run_demo

    result = run_demo(Path(args.out), progress=_progress(args), overwrite=args.overwrite)
    print(json.dumps(result))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from aecluster.report import build_report

    names = tuple(n.strip() for n in args.class_names.split(",")) if args.class_names else ()
    page = build_report(
        args.checkpoint,
        args.data_dir,
        args.out,
        args.compare,
        tuple(args.indices),
        args.run_dir,
        progress=_progress(args),
        class_names=names,
    )
    print(f"wrote {page}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aecluster",
        description="Unsupervised image clustering with autoencoders.",
        epilog=EPILOG,
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str, func) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help, epilog=EPILOG)
        sp.set_defaults(func=func)
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
        sp.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks of errors",
        )
        return sp

    def add_set(sp: argparse.ArgumentParser, scope: str = "SECTION.KEY") -> None:
        sp.add_argument(
            "--set",
            action="append",
            default=[],
            metavar=f"{scope}=VALUE",
            help="override a recipe setting, value in TOML or a bare name, e.g. "
            "--set train.epochs=5 --set cluster.method=kmeans",
        )

    def add_device(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--device",
            default="auto",
            help="auto (a GPU when torch sees one, else the CPU), cpu, cuda or mps",
        )

    def add_files(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--strict",
            action="store_true",
            help="stop at an unreadable image file instead of skipping it",
        )

    def add_export(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--export",
            metavar="DIR",
            help="also write one folder per cluster "
            "(cluster_0, ...) of symlinks to the image files",
        )
        sp.add_argument("--copy", action="store_true", help="with --export: copy, not link")

    c = add(
        "cluster",
        "Train the default recipe on a set of images, cluster them and write "
        "DIR/clusters.csv, DIR/model.pth, DIR/skipped.csv and the report DIR/index.html.",
        cmd_cluster,
    )
    c.add_argument("images", help=f"the images: {SOURCES}")
    c.add_argument(
        "--clusters",
        type=clusters_arg,
        required=True,
        help="number of clusters, or auto: chosen without labels (silhouette of the codes) "
        "among --k-range",
    )
    c.add_argument(
        "--k-range",
        type=int,
        nargs=2,
        default=(2, 10),
        metavar=("MIN", "MAX"),
        help="with --clusters auto: the numbers of clusters to try (default 2 10)",
    )
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument(
        "--budget-minutes",
        type=float,
        default=10.0,
        help="training time: epochs are planned to use 90-100%% of it (default 10)",
    )
    c.add_argument("--recipe", default="best", help="built-in recipe or TOML file (default best)")
    c.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    c.add_argument("--overwrite", action="store_true", help="replace an earlier run's results")
    add_set(c)
    add_device(c)
    add_files(c)
    add_export(c)

    t = add(
        "train", "Train an autoencoder recipe on unlabeled images and save a checkpoint.", cmd_train
    )
    t.add_argument("--data", required=True, help=f"the training images: {SOURCES}")
    t.add_argument("--out", required=True, help="final checkpoint path (.pth)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    t.add_argument(
        "--recipe",
        default="best",
        help="built-in recipe name (best, improved, baseline, demo) or a TOML file (default best)",
    )
    t.add_argument("--clusters", type=int, help="number of clusters (cluster.n_clusters)")
    add_set(t)
    t.add_argument(
        "--run-dir",
        help="where epoch checkpoints and metrics go "
        "(default: OUT.run/); rerunning resumes from its last checkpoint",
    )
    t.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep every epoch "
        "checkpoint (default: only the latest and the one selection would choose)",
    )
    t.add_argument(
        "--budget-minutes",
        type=float,
        help="finish within this many minutes: epochs are re-planned from the measured speed "
        "(at most the recipe's; --set train.fill_budget=true plans as many as fit)",
    )
    t.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes reading training batches (default 0: the training process reads them; "
        "the result is the same for any number)",
    )
    t.add_argument("--val-x", help="validation images, only to record accuracy per checkpoint "
                   "(its time is not counted in --budget-minutes)")  # fmt: skip
    t.add_argument("--val-y", help="validation labels .npy (never used for training)")
    add_device(t)
    add_files(t)

    pr = add(
        "predict",
        "Embed, reduce and cluster images with a trained checkpoint; write "
        "id,label (for an .npy) or path,cluster,confidence (for image files).",
        cmd_predict,
    )
    pr.add_argument(
        "--checkpoint", required=True, help="a checkpoint of train, cluster or a homework script"
    )
    pr.add_argument("--data", required=True, help=f"the images to cluster: {SOURCES}")
    pr.add_argument("--out", required=True, help="prediction CSV path")
    pr.add_argument("--n-clusters", type=int, help="override the recipe's number of clusters")
    pr.add_argument(
        "--cache",
        metavar="DIR",
        help="keep decoded image files in DIR as a memory-mapped images.npy and reuse it "
        "while the files are unchanged (train and cluster cache in their run folder)",
    )
    pr.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    add_set(pr, "cluster.KEY")
    add_device(pr)
    add_files(pr)
    add_export(pr)

    e = add(
        "evaluate",
        "Score a checkpoint on labelled images (accuracy, NMI, ARI, recon MSE), "
        "or score a prediction CSV against labels.",
        cmd_evaluate,
    )
    e.add_argument("--checkpoint", help="a trained checkpoint")
    e.add_argument("--val-x", help=f"labelled images: {SOURCES}")
    e.add_argument("--val-y", help="their labels .npy, in the same order")
    e.add_argument(
        "--data",
        help="also cluster these (unlabelled training) images together "
        "with --val-x, as hw9_best.sh does, and score the val rows",
    )
    e.add_argument("--predictions", help="a prediction CSV to score against --val-y instead")
    e.add_argument("--n-clusters", type=int, help="override the recipe's number of clusters")
    add_set(e, "cluster.KEY")
    add_device(e)
    add_files(e)

    d = add(
        "demo",
        "Cluster scikit-learn's handwritten digits (no download): train a small "
        "autoencoder, cluster into 10 groups, print accuracy/NMI, write predictions.",
        cmd_demo,
    )
    d.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    d.add_argument("--overwrite", action="store_true", help="replace an earlier demo's files")

    r = add(
        "report",
        "Draw the homework's figures and write a self-contained OUT/index.html.",
        cmd_report,
    )
    r.add_argument("--checkpoint", required=True, help="the model to report on")
    r.add_argument(
        "--compare",
        help="a second checkpoint (e.g. the improved one) to compare; "
        "the single-model figures then show this one",
    )
    r.add_argument(
        "--data-dir",
        required=True,
        help="folder with trainX.npy, valX.npy, valY.npy, visualization.npy",
    )
    r.add_argument("--out", required=True, help="output folder for PNGs and index.html")
    r.add_argument(
        "--run-dir",
        help="training run folder or .metrics.jsonl file with the "
        "per-checkpoint metrics (default: found beside the checkpoint)",
    )
    r.add_argument(
        "--indices",
        type=int,
        nargs="+",
        default=[1, 2, 3, 6, 7, 9],
        help="trainX images to reconstruct (default 1 2 3 6 7 9)",
    )
    r.add_argument(
        "--class-names", help="names of the classes 0, 1, ... in the figures, e.g. animal,scenery"
    )
    return p


def _one_line(text: str) -> str:
    """A message on one line, whatever the paths in it hold."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: the finished epochs are saved


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("aecluster: interrupted; finished checkpoints and files are kept", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            raise
        if isinstance(e, AeclusterError):
            message, code = str(e), 2
        elif isinstance(e, OSError):
            message, code = f"{e.filename or ''}: {os_reason(e)}".lstrip(": "), 2
        elif isinstance(e, MemoryError):
            message, code = "out of memory", 2
        else:  # a bug: say so in one line; --debug shows where
            message = f"internal error ({type(e).__name__}: {e}); --debug shows the traceback"
            code = 1
        print(f"aecluster: error: {_one_line(message)}", file=sys.stderr)
        return code
