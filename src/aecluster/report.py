"""The homework report: every figure it asks for, plus a few more, in one self-contained HTML page.

Figures whose input file is absent are skipped with a note. Per-checkpoint metrics are read from
the training run's metrics.jsonl, never recomputed.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.offsetbox import AnnotationBbox, OffsetImage  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402

from aecluster.checkpoint import load_checkpoint, load_model  # noqa: E402
from aecluster.cluster import TSNE, ClusterPipeline  # noqa: E402
from aecluster.data import iter_batches, load_images, load_labels, to_uint8_images  # noqa: E402
from aecluster.errors import InputError  # noqa: E402
from aecluster.files import (  # noqa: E402
    atomic_path,
    check_output_folder,
    new_folder,
    refuse_overwriting_inputs,
    write_text_atomic,
)
from aecluster.metrics import best_mapping, scores  # noqa: E402
from aecluster.models import AutoEncoder  # noqa: E402
from aecluster.predict import embed, fit_cluster_pipeline, reconstruction_errors  # noqa: E402
from aecluster.progress import progress_bar  # noqa: E402
from aecluster.runs import metrics_path, read_metrics  # noqa: E402

RECON_INDICES = (1, 2, 3, 6, 7, 9)
PCA_DIMS = (2, 8, 32, 64, 128)
COLORS = np.array(["tab:orange", "tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown",
                   "tab:pink", "tab:gray", "tab:olive", "tab:cyan"])  # fmt: skip


@dataclass
class Section:
    title: str
    caption: str
    image: str | None = None  # PNG file name inside the output folder
    table: list[list[str]] | None = None
    html: str | None = None  # a ready-made, escaped HTML fragment (e.g. thumbnail grids)


@dataclass
class Model:
    """A checkpoint with its clustering of the validation images."""

    name: str
    model: AutoEncoder
    recipe: dict
    run_dir: Path
    val_codes: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    val_embedding: np.ndarray | None = None
    val_scores: dict = field(default_factory=dict)
    selected_epoch: int | None = None  # the checkpoint label-free selection chose


@dataclass
class HomeworkData:
    train: np.ndarray | None
    val_x: np.ndarray | None
    val_y: np.ndarray | None
    visualization: np.ndarray | None
    FILES: ClassVar[tuple[str, ...]] = ("trainX.npy", "valX.npy", "valY.npy", "visualization.npy")

    @classmethod
    def from_dir(cls, data_dir: Path) -> HomeworkData:
        if not data_dir.is_dir():
            reason = "is not a folder" if data_dir.exists() else "data folder not found"
            raise InputError(f"{data_dir}: {reason}")

        def get(name: str, loader: Callable):
            return loader(data_dir / name) if (data_dir / name).exists() else None

        val_x = get("valX.npy", load_images)
        val_y = get("valY.npy", lambda p: load_labels(p, None if val_x is None else len(val_x)))
        return cls(get("trainX.npy", load_images), val_x, val_y,
                   get("visualization.npy", load_images))  # fmt: skip


# every file a report writes into its folder
REPORT_FILES = (
    *(f"{name}.png" for name in ("embedding", "reconstructions", "checkpoints", "visualization",
                                 "thumbnails", "clusters", "confusion", "mistakes")),
    "index.html",
)  # fmt: skip


def save_figure(fig: plt.Figure, out: Path, name: str) -> str:
    fig.tight_layout()
    with atomic_path(out / name) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return name


def _two_d(m: Model) -> np.ndarray:
    emb = m.val_embedding
    if emb.shape[1] == 2:
        return emb
    return TSNE(random_state=m.recipe["cluster"]["seed"]).fit_transform(emb)


def class_namer(names: Sequence[str] = ()) -> Callable[[int], str]:
    """Class c's name for the figures: `--class-names` when given, else `class c`."""
    return lambda c: names[c] if 0 <= c < len(names) else f"class {c}"


DEFAULT_NAMES = class_namer()


def embedding_figure(
    models: list[Model], val_y: np.ndarray, out: Path, name: Callable[[int], str] = DEFAULT_NAMES
) -> Section:
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 5), squeeze=False)
    for ax, m in zip(axes[0], models, strict=True):
        xy = _two_d(m)
        for c in np.unique(val_y):
            ax.scatter(*xy[val_y == c].T, s=8, c=COLORS[c % 10], label=name(int(c)))
        ax.set_title(f"{m.name}: val accuracy {m.val_scores['accuracy']:.3f}")
        ax.set(xlabel="dimension 1", ylabel="dimension 2")
        ax.legend(markerscale=2)
    return Section("Validation images embedded in 2-D",
                   "valX through each model's encoder and reduction, coloured by the true label.",
                   save_figure(fig, out, "embedding.png"))  # fmt: skip


def reconstruction_figure(m: Model, train: np.ndarray, indices, out: Path) -> Section:
    indices = list(indices)
    x = next(iter_batches(train[indices], len(indices)))
    with torch.inference_mode():
        recon = m.model.eval()(x).recon
    mse = ((recon - x) ** 2).mean((1, 2, 3)).tolist()
    fig, axes = plt.subplots(2, len(indices), figsize=(1.6 * len(indices), 3.6), squeeze=False)
    for j, (i, orig, rec) in enumerate(zip(indices, to_uint8_images(x), to_uint8_images(recon),
                                           strict=True)):  # fmt: skip
        axes[0, j].imshow(orig)
        axes[0, j].set_title(f"trainX[{i}]", fontsize=9)
        axes[1, j].imshow(rec)
        axes[1, j].set_title(f"MSE {mse[j]:.4f}", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("reconstruction")
    caption = f"{m.name}: originals (top) and reconstructions (bottom), MSE on the [-1, 1] scale."
    return Section("Reconstructions", caption, save_figure(fig, out, "reconstructions.png"))


RIGHT_AXIS = [
    ("val_accuracy", "val accuracy", "s-b"),
    ("stability", "cluster stability (no labels)", "^--g"),
]


def checkpoints_figure(m: Model, out: Path, train: np.ndarray | None) -> Section:
    rows = read_metrics(m.run_dir)
    if len(rows) < 2:
        return Section("Checkpoints", f"skipped: no per-checkpoint metrics in {m.run_dir}")
    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.6))
    lines = ax.plot(epochs, [r["recon_mse"] for r in rows], "o-", c="tab:red",
                    label="reconstruction MSE over trainX (left axis)")  # fmt: skip
    ax.set(xlabel="epoch", ylabel="reconstruction MSE over trainX")
    ax.yaxis.label.set_color("tab:red")
    note = f"{len(rows)} checkpoints of {m.name}, as its training run recorded them."
    drawn = ["reconstruction error"]
    right = [(key, label, style) for key, label, style in RIGHT_AXIS if key in rows[0]]
    ax2 = ax.twinx() if right else None
    for key, label, style in right:
        lines += ax2.plot(epochs, [r[key] for r in rows], style, label=f"{label} (right axis)")
        drawn.append(label)
    finetune = (
        m.recipe["finetune"]["epochs"] if m.recipe["cluster"]["method"]["name"] == "head" else 0
    )
    if finetune and train is not None:
        # the saved model is the chosen checkpoint after SCAN fine-tuning: draw where it ends
        end = (m.selected_epoch or epochs[-1]) + finetune
        ax.axvspan(m.selected_epoch or epochs[-1], end, color="0.9")
        mse = float(reconstruction_errors(m.model, train).mean())
        lines += ax.plot([end], [mse], "*", c="tab:red", ms=12,
                         label="after SCAN fine-tuning (the saved model)")  # fmt: skip
        if ax2 is not None and "val_accuracy" in rows[0] and m.val_scores:
            lines += ax2.plot([end], [m.val_scores["accuracy"]], "*", c="tab:blue", ms=12,
                              label="val accuracy after fine-tuning")  # fmt: skip
        note += (f" The grey band is the {finetune} epochs of SCAN fine-tuning that follow the "
                 "chosen checkpoint; the stars are the saved, fine-tuned model.")  # fmt: skip
    if "val_accuracy" not in rows[0]:
        note += " The run recorded no val accuracy (train with --val-x/--val-y)."
    if m.selected_epoch is not None and m.recipe["select"]["checkpoint"] != "last":
        lines.append(ax.axvline(m.selected_epoch, ls=":", c="k", label="chosen checkpoint"))
        note += (f" The dotted line marks epoch {m.selected_epoch}, the checkpoint the recipe "
                 f"chose without labels (rule: {m.recipe['select']['checkpoint']}).")  # fmt: skip
    ax.set_title(" and ".join([", ".join(drawn[:-1]), drawn[-1]] if len(drawn) > 1 else drawn)
                 .capitalize() + " per checkpoint", fontsize=10)  # fmt: skip
    ax.legend(handles=lines, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2,
              fontsize=8, frameon=False)  # fmt: skip
    return Section("Checkpoints", note, save_figure(fig, out, "checkpoints.png"))


def visualization_figure(
    m: Model, images: np.ndarray, out: Path, name: Callable[[int], str] = DEFAULT_NAMES
) -> Section:
    codes = embed(m.model, images, progress=True, tta=m.recipe["cluster"]["tta"])
    y = (np.arange(len(images)) >= len(images) // 2).astype(int)
    seed = m.recipe["cluster"]["seed"]
    pca = PCA(2, random_state=seed).fit_transform(codes)
    tsne = TSNE(random_state=seed).fit_transform(PCA(min(50, codes.shape[1]), random_state=seed)
                                                 .fit_transform(codes))  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, xy, title in ((axes[0], pca, "PCA"), (axes[1], tsne, "t-SNE")):
        for c in (0, 1):
            ax.scatter(*xy[y == c].T, s=4, c=COLORS[c], label=f"label {c}: {name(c)}")
        ax.set(title=f"visualization.npy, {title}", xlabel="dimension 1", ylabel="dimension 2")
        ax.legend(markerscale=3)
    return Section("visualization.npy in 2-D", f"{m.name}'s latent codes; first half label 0, "
                   "second half label 1.", save_figure(fig, out, "visualization.png"))  # fmt: skip


def dimensions_table(models: list[Model], val_y: np.ndarray) -> Section:
    rows = [["model", "latent dim", "reduced dim (PCA)", "val accuracy (KMeans)"]]
    for m in models:
        dims = [d for d in PCA_DIMS if d < min(m.val_codes.shape)] + [None]
        for d in dims:
            reduce = [{"name": "pca", "n_components": d}] if d else []
            pipe = ClusterPipeline(reduce, {"name": "kmeans"}, n_clusters=len(np.unique(val_y)))
            acc = scores(val_y, pipe.fit_predict(m.val_codes))["accuracy"]
            rows.append([m.name, str(m.model.latent_dim), str(d or "none"), f"{acc:.3f}"])
    return Section("Latent and reduced dimensions", "Accuracy on valX for (latent dim, PCA dim) "
                   "settings, each followed by KMeans.", table=rows)  # fmt: skip


def thumbnails_figure(m: Model, images: np.ndarray, out: Path, n: int = 300) -> Section:
    xy = _two_d(m)
    idx = np.random.default_rng(0).permutation(len(images))[:n]
    fig, ax = plt.subplots(figsize=(10, 10))
    ax.scatter(*xy.T, s=0)
    for i in idx:
        ax.add_artist(AnnotationBbox(OffsetImage(images[i], zoom=0.8), xy[i], frameon=False))
    ax.set(title=f"{m.name}: valX images at their 2-D positions", xlabel="dimension 1",
           ylabel="dimension 2")  # fmt: skip
    return Section("Thumbnail map", f"{len(idx)} validation images drawn where the embedding "
                   "puts them.", save_figure(fig, out, "thumbnails.png"))  # fmt: skip


def clusters_figure(m: Model, images: np.ndarray, out: Path, per_cluster: int = 10) -> Section:
    clusters = np.unique(m.val_labels)
    fig, axes = plt.subplots(len(clusters), per_cluster, squeeze=False,
                             figsize=(1.1 * per_cluster, 1.2 * len(clusters)))  # fmt: skip
    for r, c in enumerate(clusters):
        members = np.flatnonzero(m.val_labels == c)[:per_cluster]
        for j, ax in enumerate(axes[r]):
            ax.axis("off")
            if j < len(members):
                ax.imshow(images[members[j]])
        axes[r, 0].set_title(f"cluster {c} ({np.sum(m.val_labels == c)} images)", fontsize=8,
                             loc="left")  # fmt: skip
    return Section("Samples per cluster", f"{m.name}: the first validation images of each cluster.",
                   save_figure(fig, out, "clusters.png"))  # fmt: skip


def _matched(m: Model, val_y: np.ndarray) -> np.ndarray:
    """Each val image's cluster, renamed to the class it is matched to (-1: unmatched)."""
    mapping = best_mapping(val_y, m.val_labels)
    return np.array([mapping.get(int(c), -1) for c in m.val_labels])


def mistakes_figure(
    m: Model, images: np.ndarray, val_y: np.ndarray, out: Path,
    name: Callable[[int], str] = DEFAULT_NAMES, per_class: int = 12,
) -> Section:  # fmt: skip
    matched = _matched(m, val_y)
    classes = np.unique(val_y)
    fig, axes = plt.subplots(len(classes), per_class, squeeze=False,
                             figsize=(1.1 * per_class, 1.2 * len(classes)))  # fmt: skip
    for r, c in enumerate(classes):
        wrong = np.flatnonzero((val_y == c) & (matched != c))
        for j, ax in enumerate(axes[r]):
            ax.axis("off")
            if j < len(wrong):
                ax.imshow(images[wrong[j]])
        axes[r, 0].set_title(f"{name(int(c))}: {len(wrong)} of {np.sum(val_y == c)} in another "
                             "class's cluster", fontsize=8, loc="left")  # fmt: skip
    return Section("Mistakes", f"{m.name}: the first validation images of each class that were "
                   "clustered with another class (the labels are used only to draw this).",
                   save_figure(fig, out, "mistakes.png"))  # fmt: skip


def confusion_figure(
    m: Model, val_y: np.ndarray, out: Path, name: Callable[[int], str] = DEFAULT_NAMES
) -> Section:
    matched = _matched(m, val_y)
    classes = np.unique(val_y)
    cm = confusion_matrix(val_y, matched, labels=classes)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        dark = v > cm.max() / 2
        axes[0].text(j, i, str(v), ha="center", va="center", color="white" if dark else "black")
    axes[0].set(
        title="confusion (clusters matched to classes)",
        xlabel="cluster (matched)",
        ylabel="true class",
        xticks=range(len(classes)),
        yticks=range(len(classes)),
        xticklabels=[name(int(c)) for c in classes],
        yticklabels=[name(int(c)) for c in classes],
    )
    sizes = np.bincount(m.val_labels)
    axes[1].bar(range(len(sizes)), sizes, color=COLORS[np.arange(len(sizes)) % 10])
    axes[1].set(title="cluster sizes on valX", xlabel="cluster", ylabel="images",
                xticks=range(len(sizes)), xlim=(-0.6, len(sizes) - 0.4))  # fmt: skip
    return Section("Confusion matrix and cluster sizes", f"{m.name} on valX; NMI "
                   f"{m.val_scores['nmi']:.3f}, ARI {m.val_scores['ari']:.3f}.",
                   save_figure(fig, out, "confusion.png"))  # fmt: skip


def render_html(sections: list[Section], out: Path, title: str) -> Path:
    parts = []
    for s in sections:
        body = f"<p>{html.escape(s.caption)}</p>"
        if s.image:
            data = base64.b64encode((out / s.image).read_bytes()).decode()
            body += f'<img alt="{html.escape(s.title)}" src="data:image/png;base64,{data}">'
        if s.table:
            head, *rows = s.table
            body += "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
            body += "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                            for r in rows) + "</table>"  # fmt: skip
        if s.html:
            body += s.html
        parts.append(f"<section><h2>{html.escape(s.title)}</h2>{body}</section>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; color: #222; }}
section {{ margin-bottom: 2.5em; }} img {{ max-width: 100%; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .3em .8em; }}
.grid {{ display: flex; flex-wrap: wrap; align-items: flex-end; gap: 4px; margin: .3em 0; }}
.grid .note {{ width: 9em; font-size: .8em; color: #666; }}
figure {{ margin: 0; width: 68px; text-align: center; }} figure img {{ width: 64px; }}
figcaption {{ font-size: .6em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }}
h3 {{ font-size: 1em; margin: 1em 0 .2em; }}
</style></head>
<body data-images-loaded="pending"><h1>{html.escape(title)}</h1>
{"".join(parts)}
<script>
window.addEventListener("load", () => {{
  const imgs = [...document.images];
  document.body.dataset.imagesLoaded =
    imgs.filter(i => i.complete && i.naturalWidth > 0).length + "/" + imgs.length;
}});
</script></body></html>
"""
    path = out / "index.html"
    write_text_atomic(path, page)
    return path


def _load(path: Path, data: HomeworkData) -> Model:
    model, recipe = load_model(path)
    run = metrics_path(path) if metrics_path(path).exists() else path.with_name(path.name + ".run")
    m = Model(
        path.stem, model, recipe, run, selected_epoch=load_checkpoint(path).get("selected_epoch")
    )
    if data.val_x is not None and data.val_y is not None:
        tta = recipe["cluster"]["tta"]
        m.val_codes = embed(model, data.val_x, tta=tta)
        # val is clustered together with trainX when there is one, as hw9_best.sh clusters
        # trainX: neighbour-based clustering (SCAN) needs more than a few hundred points
        context = None if data.train is None else embed(model, data.train, tta=tta)
        pipe = fit_cluster_pipeline(m.val_codes, recipe, len(np.unique(data.val_y)), context)
        m.val_labels = pipe.labels_[-len(m.val_codes) :]
        m.val_embedding = pipe.embedding_[-len(m.val_codes) :]
        m.val_scores = scores(data.val_y, m.val_labels)
    return m


def build_report(
    checkpoint: str | os.PathLike,
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    compare: str | os.PathLike | None = None,
    indices: tuple[int, ...] = RECON_INDICES,
    run_dir: str | os.PathLike | None = None,
    progress: bool = True,
    class_names: Sequence[str] = (),
) -> Path:
    """Write the figures and `out/index.html`; returns the page's path.

    Nothing is written until the inputs are read; an error leaves no empty folder behind.
    """
    out = check_output_folder(out)
    data_dir = Path(data_dir)
    paths = [Path(checkpoint)] + ([Path(compare)] if compare else [])
    inputs = [*paths, *(data_dir / name for name in HomeworkData.FILES), run_dir,
              *(metrics_path(p) for p in paths)]  # fmt: skip
    refuse_overwriting_inputs([out / name for name in REPORT_FILES], inputs)
    data = HomeworkData.from_dir(data_dir)
    if data.train is not None and (bad := [i for i in indices if not 0 <= i < len(data.train)]):
        raise InputError(f"--indices {bad[0]}: out of range; trainX has {len(data.train)} images")
    models = [_load(p, data) for p in progress_bar(paths, desc="embed valX", enabled=progress)]
    with new_folder(out):
        return _write_report(
            models, data, out, indices, run_dir, progress, class_namer(class_names)
        )


def _write_report(
    models: list[Model], data: HomeworkData, out: Path, indices: tuple[int, ...],
    run_dir: str | os.PathLike | None, progress: bool, name: Callable[[int], str],
) -> Path:  # fmt: skip
    main = models[-1]  # single-model figures show the --compare model when there is one
    if run_dir:
        main.run_dir = Path(run_dir)
    has_val = data.val_x is not None and data.val_y is not None
    missing = lambda what: Section(what, "skipped: the data folder has no such file")  # noqa: E731

    steps: list[tuple[str, Callable[[], Section]]] = [
        ("embedding", lambda: embedding_figure(models, data.val_y, out, name) if has_val
         else missing("valX.npy / valY.npy")),
        ("reconstructions", lambda: reconstruction_figure(main, data.train, indices, out)
         if data.train is not None else missing("trainX.npy")),
        ("checkpoints", lambda: checkpoints_figure(main, out, data.train)),
        ("visualization", lambda: visualization_figure(main, data.visualization, out, name)
         if data.visualization is not None else missing("visualization.npy")),
        ("dimensions", lambda: dimensions_table(models, data.val_y) if has_val
         else missing("valX.npy / valY.npy")),
        ("thumbnails", lambda: thumbnails_figure(main, data.val_x, out) if has_val
         else missing("valX.npy")),
        ("clusters", lambda: clusters_figure(main, data.val_x, out) if has_val
         else missing("valX.npy")),
        ("confusion", lambda: confusion_figure(main, data.val_y, out, name) if has_val
         else missing("valY.npy")),
        ("mistakes", lambda: mistakes_figure(main, data.val_x, data.val_y, out, name) if has_val
         else missing("valX.npy / valY.npy")),
    ]  # fmt: skip
    sections = []
    for _, step in progress_bar(steps, desc="report", enabled=progress):
        sections.append(step())
    names = " vs ".join(m.name for m in models)
    return render_html(sections, out, f"aecluster report: {names}")
