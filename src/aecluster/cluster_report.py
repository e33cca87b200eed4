"""The report a practitioner reads: no labels needed.

What was run on what; cluster sizes; per cluster, the images nearest its centre and a random
sample; the thumbnail map; the confidence histogram and the least confident images; the k curve
when k was chosen. Every thumbnail carries its file name (hover, and in the page's text).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
from PIL import Image

from aecluster.cluster import TSNE
from aecluster.report import Section, plt, render_html, save_figure

PER_ROW = 10
MAP_POINTS = 400


def _thumb(image: np.ndarray, scale: int = 2) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale),
                                  Image.Resampling.NEAREST).save(buf, format="PNG")  # fmt: skip
    return base64.b64encode(buf.getvalue()).decode()


def thumbnail_grid(images: np.ndarray, names: list[str], indices: np.ndarray, note: str) -> str:
    """An HTML row of thumbnails, each titled with its file name and confidence note."""
    cells = "".join(
        f'<figure title="{html.escape(names[i])}"><img alt="{html.escape(names[i])}" '
        f'src="data:image/png;base64,{_thumb(images[i])}"><figcaption>'
        f"{html.escape(Path(names[i]).name)}</figcaption></figure>"
        for i in indices
    )
    return f'<div class="grid"><span class="note">{html.escape(note)}</span>{cells}</div>'


def sizes_figure(labels: np.ndarray, n_clusters: int, out: Path) -> Section:
    counts = np.bincount(labels, minlength=n_clusters)
    fig, ax = plt.subplots(figsize=(min(12, 2 + 0.6 * n_clusters), 3))
    ax.bar(np.arange(n_clusters), counts, color="tab:blue")
    ax.set_xticks(np.arange(n_clusters))
    ax.set_xlim(-0.6, n_clusters - 0.4)
    ax.set(xlabel="cluster", ylabel="images", title="Cluster sizes")
    return Section("Cluster sizes", f"{len(labels)} images in {n_clusters} clusters: "
                   + ", ".join(f"{c}: {n}" for c, n in enumerate(counts)) + ".",
                   save_figure(fig, out, "sizes.png"))  # fmt: skip


def montages(
    images: np.ndarray, names: list[str], labels: np.ndarray, proba: np.ndarray, seed: int = 0
) -> Section:
    """Per cluster: the images the model is surest of (nearest the cluster's centre) and a
    random sample of its members."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(proba.shape[1]):
        members = np.flatnonzero(labels == c)
        if not len(members):
            rows.append(f"<h3>cluster {c}: empty</h3>")
            continue
        central = members[np.argsort(-proba[members, c], kind="stable")][:PER_ROW]
        sample = rng.choice(members, min(PER_ROW, len(members)), replace=False)
        rows.append(f"<h3>cluster {c} ({len(members)} images)</h3>"
                    + thumbnail_grid(images, names, central, "nearest the centre")
                    + thumbnail_grid(images, names, sample, "random sample"))  # fmt: skip
    return Section("Clusters", "Each cluster's most typical images and a random sample of its "
                   "members; hover a thumbnail for its file name.", html="".join(rows))  # fmt: skip


def two_d(codes: np.ndarray, embedding: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D positions: the clustering's own embedding when it is 2-D, else t-SNE of the codes."""
    if embedding.shape[1] == 2:
        return embedding
    return TSNE(random_state=seed).fit_transform(codes)


def thumbnail_map(
    images: np.ndarray, xy: np.ndarray, labels: np.ndarray, out: Path, seed: int = 0
) -> Section:
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    idx = np.random.default_rng(seed).permutation(len(images))[:MAP_POINTS]
    fig, ax = plt.subplots(figsize=(10, 10))
    colors = plt.get_cmap("tab10" if labels.max() < 10 else "tab20")
    ax.scatter(*xy.T, s=4, c=[colors(int(c) % colors.N) for c in labels], alpha=0.5)
    for i in idx:
        ax.add_artist(AnnotationBbox(OffsetImage(images[i], zoom=0.7), xy[i], frameon=True,
                                     bboxprops={"edgecolor": colors(int(labels[i]) % colors.N),
                                                "linewidth": 1.5}, pad=0.05))  # fmt: skip
    ax.set(title="Images where the embedding puts them (frame colour: cluster)",
           xlabel="dimension 1", ylabel="dimension 2")  # fmt: skip
    return Section("Thumbnail map", f"{len(idx)} of {len(images)} images drawn at their 2-D "
                   "positions; dots are all images, coloured by cluster.",
                   save_figure(fig, out, "thumbnails.png"))  # fmt: skip


def confidence_section(
    images: np.ndarray, names: list[str], labels: np.ndarray, proba: np.ndarray, out: Path
) -> Section:
    confidence = proba[np.arange(len(labels)), labels]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.hist(confidence, bins=20, range=(0, 1), color="tab:blue")
    ax.set(xlabel="confidence (probability of the assigned cluster)", ylabel="images",
           title="Confidence")  # fmt: skip
    least = np.argsort(confidence, kind="stable")[:PER_ROW]
    grid = thumbnail_grid(images, names, least, "least confident")
    note = (f"Median confidence {np.median(confidence):.3f}; "
            f"{np.mean(confidence < 0.6):.1%} of the images below 0.6. The least confident "
            "images are the ones to check by hand.")  # fmt: skip
    return Section("Confidence", note, save_figure(fig, out, "confidence.png"), html=grid)


def k_curve(k_scores: dict[int, float], chosen: int, out: Path) -> Section:
    ks = sorted(k_scores)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(ks, [k_scores[k] for k in ks], "o-")
    ax.axvline(chosen, color="tab:red", linestyle="--", label=f"chosen k = {chosen}")
    ax.set_xticks(ks)
    ax.set(xlabel="k", ylabel="silhouette", title="Choosing k without labels")
    ax.legend()
    return Section("Number of clusters", f"k = {chosen} has the highest silhouette of the "
                   "latent codes clustered by KMeans.", save_figure(fig, out, "k.png"))  # fmt: skip


# every file this report writes into its folder
CLUSTER_REPORT_FILES = ("sizes.png", "thumbnails.png", "confidence.png", "k.png", "index.html")


def build_cluster_report(
    out: Path,
    images: np.ndarray,
    names: list[str],
    codes: np.ndarray,
    labels: np.ndarray,
    proba: np.ndarray,
    embedding: np.ndarray,
    header: list[list[str]],
    k_scores: dict[int, float] | None = None,
    seed: int = 0,
) -> Path:
    """Write the figures and `out/index.html` for clustered, unlabelled images."""
    k = proba.shape[1]
    sections = [Section("What was run", "", table=[["", "value"], *header])]
    if k_scores:
        sections.append(k_curve(k_scores, k, out))
    sections += [
        sizes_figure(labels, k, out),
        montages(images, names, labels, proba, seed),
        thumbnail_map(images, two_d(codes, embedding, seed), labels, out, seed),
        confidence_section(images, names, labels, proba, out),
    ]
    return render_html(sections, out, f"aecluster: {len(images)} images in {k} clusters")
