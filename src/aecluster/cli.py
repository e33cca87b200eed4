"""Command line: `aecluster train | predict | evaluate | demo | report`."""

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


def _val(args: argparse.Namespace):
    from aecluster.data import load_images, load_labels
    from aecluster.training import Validation

    if not (args.val_x or args.val_y):
        return None
    if not (args.val_x and args.val_y):
        raise InputError("--val-x and --val-y go together")
    images = load_images(args.val_x)
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


def cmd_train(args: argparse.Namespace) -> int:
    from aecluster.data import load_images
    from aecluster.files import check_output_path, refuse_overwriting_inputs
    from aecluster.recipes import apply_overrides, load_recipe
    from aecluster.training import default_run_dir, train, training_outputs

    recipe = apply_overrides(load_recipe(args.recipe), args.set)
    out = check_output_path(args.out, overwrite=args.overwrite)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(out)
    recipe_file = args.recipe if Path(args.recipe).suffix else None
    refuse_overwriting_inputs(training_outputs(out, run_dir),
                              [args.data, args.val_x, args.val_y, recipe_file])  # fmt: skip
    images = load_images(args.data)
    summary = train(images, recipe, out, run_dir=run_dir, val=_val(args),
                    budget_minutes=args.budget_minutes, progress=not args.quiet)  # fmt: skip
    print(json.dumps({"checkpoint": str(out), "recipe": recipe["name"], **summary}))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from aecluster.checkpoint import load_model
    from aecluster.data import load_images
    from aecluster.files import check_output_path, refuse_overwriting_inputs
    from aecluster.predict import predict, write_predictions

    t0 = time.monotonic()
    n_clusters = _n_clusters(args.n_clusters)
    check_output_path(args.out, overwrite=args.overwrite)
    refuse_overwriting_inputs([args.out], [args.data, args.checkpoint])
    model, recipe = load_model(args.checkpoint)
    recipe = _clustering_overrides(recipe, args.set)
    images = load_images(args.data)
    labels = predict(model, recipe, images, n_clusters, progress=not args.quiet)
    write_predictions(args.out, labels, overwrite=args.overwrite)
    sizes = np.bincount(labels).tolist()
    print(f"wrote {len(labels)} predictions to {args.out} (cluster sizes {sizes}, "
          f"{time.monotonic() - t0:.1f} s)")  # fmt: skip
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from aecluster.data import load_images, load_labels
    from aecluster.metrics import scores
    from aecluster.predict import read_predictions

    if args.predictions:
        if not args.val_y:
            raise InputError("--predictions needs --val-y (the true labels)")
        labels = read_predictions(args.predictions)
        result = scores(load_labels(args.val_y, len(labels)), labels)
    else:
        from aecluster.checkpoint import load_model
        from aecluster.predict import cluster_codes, embed, reconstruction_errors

        if not (args.checkpoint and args.val_x and args.val_y):
            raise InputError("evaluate needs --checkpoint, --val-x and --val-y (or --predictions)")
        model, recipe = load_model(args.checkpoint)
        recipe = _clustering_overrides(recipe, args.set)
        images = load_images(args.val_x)
        truth = load_labels(args.val_y, len(images))
        # with --data, val is clustered together with the training images, as hw9_best.sh does
        context = embed(model, load_images(args.data), not args.quiet) if args.data else None
        labels = cluster_codes(embed(model, images), recipe, _n_clusters(args.n_clusters), context)
        result = scores(truth, labels)
        result["recon_mse"] = float(reconstruction_errors(model, images).mean())
    print(json.dumps({k: round(v, 4) for k, v in result.items()}))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from aecluster.demo import run_demo

    result = run_demo(Path(args.out), progress=not args.quiet, overwrite=args.overwrite)
    print(json.dumps(result))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from aecluster.report import build_report

    page = build_report(args.checkpoint, args.data_dir, args.out, args.compare,
                        tuple(args.indices), args.run_dir)  # fmt: skip
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
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks of errors")  # fmt: skip
        return sp

    t = add("train", "Train an autoencoder recipe on unlabeled images and save a checkpoint.",
            cmd_train)  # fmt: skip
    t.add_argument("--data", required=True, help="images .npy, (N, 32, 32, 3) uint8")
    t.add_argument("--out", required=True, help="final checkpoint path (.pth)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    t.add_argument(
        "--recipe",
        default="baseline",
        help="built-in recipe name (baseline, improved, best, ...) or a TOML file",
    )
    t.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe setting, value in TOML, "
                   "e.g. --set train.epochs=5")  # fmt: skip
    t.add_argument(
        "--run-dir",
        help="where epoch checkpoints and metrics go "
        "(default: OUT.run/); rerunning resumes from its last checkpoint",
    )
    t.add_argument(
        "--budget-minutes",
        type=float,
        help="stop cleanly (and save) before this many minutes; overrides the recipe",
    )
    t.add_argument("--val-x", help="validation images, only to record accuracy per checkpoint")
    t.add_argument("--val-y", help="validation labels (never used for training)")

    pr = add("predict", "Embed, reduce and cluster images; write an id,label CSV.", cmd_predict)
    pr.add_argument("--checkpoint", required=True)
    pr.add_argument("--data", required=True, help="images .npy to cluster")
    pr.add_argument("--out", required=True, help="prediction CSV path")
    pr.add_argument("--n-clusters", type=int, help="override the recipe's number of clusters")
    pr.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    pr.add_argument("--set", action="append", default=[], metavar="cluster.KEY=VALUE",
                   help="change the checkpoint's clustering, value in TOML, "
                   "e.g. --set \"cluster.method={name='kmeans'}\"")  # fmt: skip

    e = add("evaluate", "Score a checkpoint on labelled images (accuracy, NMI, ARI, recon MSE), "
            "or score a prediction CSV against labels.", cmd_evaluate)  # fmt: skip
    e.add_argument("--checkpoint")
    e.add_argument("--val-x", help="labelled images .npy")
    e.add_argument("--val-y", help="their labels .npy")
    e.add_argument(
        "--data",
        help="also cluster these (unlabelled training) images together "
        "with --val-x, as hw9_best.sh does, and score the val rows",
    )
    e.add_argument("--predictions", help="a prediction CSV to score against --val-y instead")
    e.add_argument("--n-clusters", type=int, help="override the recipe's number of clusters")
    e.add_argument("--set", action="append", default=[], metavar="cluster.KEY=VALUE",
                   help="change the checkpoint's clustering, value in TOML, "
                   "e.g. --set \"cluster.method={name='kmeans'}\"")  # fmt: skip

    d = add("demo", "Cluster scikit-learn's handwritten digits (no download): train a small "
            "autoencoder, cluster into 10 groups, print accuracy/NMI, write predictions.",
            cmd_demo)  # fmt: skip
    d.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    d.add_argument("--overwrite", action="store_true", help="replace an earlier demo's files")

    r = add("report", "Draw the homework's figures and write a self-contained OUT/index.html.",
            cmd_report)  # fmt: skip
    r.add_argument("--checkpoint", required=True, help="the model to report on")
    r.add_argument("--compare", help="a second checkpoint (e.g. the improved one) to compare; "
                   "the single-model figures then show this one")  # fmt: skip
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
