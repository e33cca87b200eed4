"""Reduction and clustering of latent codes, as one scikit-learn-style estimator.

A pipeline is data: `reduce` is a list of steps `{"name": ..., **params}` from REDUCERS, `method`
one step from CLUSTERERS. Every random_state is the pipeline's `seed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from openTSNE import TSNE as OpenTSNE
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.cluster import AgglomerativeClustering, KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA, KernelPCA
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.utils.validation import check_array

from aecluster.errors import InputError
from aecluster.scan import SCAN, ClusterHead
from aecluster.schema import Bool, Int, ListOf, Options, Real, Rule, Spec, Table


class TSNE(TransformerMixin, BaseEstimator):
    """openTSNE (FFT-accelerated, much faster than sklearn's on 2 cores) with sklearn's API."""

    def __init__(
        self, n_components: int = 2, perplexity: float = 30.0, random_state: int = 0
    ) -> None:
        self.n_components = n_components
        self.perplexity = perplexity
        self.random_state = random_state

    def fit_transform(self, X: np.ndarray, y: Any = None) -> np.ndarray:
        X = check_array(X, dtype=np.float64)
        perplexity = min(self.perplexity, max(1.0, (len(X) - 1) / 3))
        tsne = OpenTSNE(
            n_components=self.n_components,
            perplexity=perplexity,
            random_state=self.random_state,
            n_jobs=-1,
            # FFT interpolation pays off only on large data (and only in 2-D); BH is far
            # faster below a few thousand points
            negative_gradient_method="fft" if self.n_components <= 2 and len(X) > 5000 else "bh",
        )
        self.tsne_ = tsne.fit(X)
        self.embedding_ = np.asarray(self.tsne_)
        return self.embedding_

    def fit(self, X: np.ndarray, y: Any = None) -> TSNE:
        self.fit_transform(X)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Place new points in the fitted embedding (openTSNE's out-of-sample transform)."""
        return np.asarray(self.tsne_.transform(check_array(X, dtype=np.float64)))


@dataclass(frozen=True)
class Step:
    """A registry entry: how to build the step, and the only parameters it accepts."""

    build: Callable[..., Any]
    params: Table


FINITE = Real(-1e30, 1e30)
FIT_SAMPLE = 10_000  # above this many codes, clustering is fitted on a sample (ClusterPipeline)
N_COMPONENTS = Int(1, 4096)
MAX_ITER = Int(1, 100_000)

REDUCERS: dict[str, Step] = {
    "pca": Step(
        lambda n_components=50, seed=0, **kw: PCA(n_components, random_state=seed, **kw),
        Table({"n_components": N_COMPONENTS, "whiten": Bool()}),
    ),
    "kernel_pca": Step(
        lambda n_components=200, kernel="rbf", seed=0, **kw: KernelPCA(
            n_components, kernel=kernel, eigen_solver="randomized", random_state=seed, **kw
        ),
        Table(
            {
                "n_components": N_COMPONENTS,
                "kernel": Options(("rbf", "linear", "poly", "sigmoid", "cosine")),
                "gamma": Real(0, 1e6, lo_open=True),
            }
        ),
    ),
    "tsne": Step(
        lambda seed=0, **kw: TSNE(random_state=seed, **kw),
        Table({"n_components": Int(1, 3), "perplexity": Real(1, 1000)}),
    ),
    "normalize": Step(lambda seed=0: Normalizer(), Table({})),
    "standardize": Step(lambda seed=0: StandardScaler(), Table({})),
}


def _head_shapes_agree(p: dict) -> bool:
    if not {"mean", "scale", "weight", "bias"} <= set(p):
        return False
    dim = len(p["mean"])
    rows = p["weight"]
    return (
        len(p["scale"]) == dim
        and all(len(row) == dim for row in rows)
        and len(p["bias"]) == len(rows)
    )


CLUSTERERS: dict[str, Step] = {
    "kmeans": Step(
        lambda k, seed=0, n_init=10, **kw: KMeans(k, n_init=n_init, random_state=seed, **kw),
        Table({"n_init": Int(1, 1000), "max_iter": MAX_ITER}),
    ),
    "minibatch_kmeans": Step(
        lambda k, seed=0, **kw: MiniBatchKMeans(k, random_state=seed, **kw),
        Table({"n_init": Int(1, 1000), "max_iter": MAX_ITER, "batch_size": Int(1, 10**6)}),
    ),
    "gmm": Step(
        lambda k, seed=0, n_init=1, **kw: GaussianMixture(
            k, n_init=n_init, random_state=seed, **kw
        ),
        Table({
            "n_init": Int(1, 100),
            "max_iter": MAX_ITER,
            "covariance_type": Options(("full", "tied", "diag", "spherical")),
        }),
    ),
    "agglomerative": Step(
        lambda k, seed=0, **kw: AgglomerativeClustering(k, **kw),
        Table({"linkage": Options(("ward", "complete", "average", "single"))}),
    ),
    "scan": Step(
        lambda k, seed=0, **kw: SCAN(k, random_state=seed, **kw),
        Table({
            "n_neighbors": Int(1, 1000),
            "entropy_weight": Real(0, 1000),
            "n_heads": Int(1, 100),
            "steps": Int(0, 10**6),
            "self_label_epochs": Int(0, 10_000),
            "threshold": Real(0, 1),
            "noise": Real(0, 10),
            "lr": Real(0, 10, lo_open=True),
            "batch_size": Int(2, 10**6),
        }),
    ),
    "head": Step(
        lambda k, seed=0, **kw: ClusterHead(k, **kw),
        Table(
            {
                "mean": ListOf(FINITE, 1, 65536),
                "scale": ListOf(Real(0, 1e30, lo_open=True), 1, 65536),
                "weight": ListOf(ListOf(FINITE, 1, 65536), 1, 10_000),
                "bias": ListOf(FINITE, 1, 10_000),
            },
            rules=(Rule(_head_shapes_agree, "needs mean, scale, weight and bias of agreeing sizes"),),  # noqa: E501
        ),
    ),
}  # fmt: skip


def build_step(registry: dict[str, Step], spec: dict, *args: Any, seed: int) -> Any:
    """Build a step from its spec, after checking its name and parameters."""
    Spec(registry).check(spec, "step")
    params = {k: v for k, v in spec.items() if k != "name"}
    return registry[spec["name"]].build(*args, seed=seed, **params)


def gaussian_memberships(Z: np.ndarray, centroids: np.ndarray, variance: float) -> np.ndarray:
    """(N, k) soft assignments under isotropic Gaussians of one `variance` around `centroids`
    (rows of NaN are clusters that ended empty: probability 0)."""
    present = ~np.isnan(centroids).any(1)
    c = centroids[present]
    d2 = np.maximum((Z**2).sum(1, keepdims=True) - 2 * Z @ c.T + (c**2).sum(1), 0.0)
    logits = -d2 / (2 * variance)
    p = np.exp(logits - logits.max(1, keepdims=True))
    proba = np.zeros((len(Z), len(centroids)))
    proba[:, present] = p / p.sum(1, keepdims=True)
    return proba


class ClusterPipeline(ClusterMixin, BaseEstimator):
    """Reduce (e.g. KernelPCA -> t-SNE), then cluster.

    After `fit`, `labels_` holds the clusters, `proba_` the soft assignments and `embedding_`
    the last reduced representation (2-D after t-SNE), which the report plots. `predict` and
    `predict_proba` place new codes with the fitted steps, without refitting. Soft assignments
    are the clusterer's own where it has them (SCAN, a trained head, a Gaussian mixture), else
    isotropic Gaussians around the cluster centroids with the spread of the fitted points.

    Bounded memory for any N: with more than `fit_sample` codes, every step is fitted on a
    seeded sample of that many and applied to the rest by `predict` (KernelPCA's kernel matrix,
    t-SNE and SCAN's neighbours grow with the square of what they are fitted on). Below it,
    nothing changes.
    """

    def __init__(
        self,
        reduce: list[dict] | tuple = (),
        method: dict | None = None,
        n_clusters: int = 2,
        seed: int = 0,
        fit_sample: int = FIT_SAMPLE,
    ) -> None:
        self.reduce = reduce
        self.method = method
        self.n_clusters = n_clusters
        self.seed = seed
        self.fit_sample = fit_sample

    def reduce_transform(self, X: np.ndarray) -> np.ndarray:
        """Fit the reduction steps on X and return the reduced X."""
        Z = check_array(X, dtype=np.float64)
        self.reducers_ = []
        for spec in self.reduce:
            step = build_step(REDUCERS, spec, seed=self.seed)
            n_components = getattr(step, "n_components", None)
            if n_components is not None and n_components >= min(Z.shape):
                step.set_params(n_components=max(1, min(Z.shape) - 1))
            Z = step.fit_transform(Z)
            self.reducers_.append(step)
        return Z

    def fit(self, X: np.ndarray, y: Any = None) -> ClusterPipeline:
        if self.n_clusters < 2:
            raise InputError(f"n_clusters must be at least 2, got {self.n_clusters}")
        if len(X) < self.n_clusters:
            raise InputError(f"{len(X)} images cannot form {self.n_clusters} clusters")
        sampled = len(X) > self.fit_sample
        if sampled:
            rng = np.random.default_rng(self.seed)
            X_all, X = X, X[np.sort(rng.choice(len(X), self.fit_sample, replace=False))]
        Z = self.embedding_ = self.reduce_transform(X)
        clusterer = build_step(CLUSTERERS, self.method or {"name": "kmeans"}, self.n_clusters,
                               seed=self.seed)  # fmt: skip
        self.labels_ = np.asarray(clusterer.fit_predict(Z), dtype=np.int64)
        self.clusterer_ = clusterer
        self.centroids_ = np.stack([Z[self.labels_ == c].mean(0) if (self.labels_ == c).any()
                                    else np.full(Z.shape[1], np.nan)
                                    for c in range(self.n_clusters)])  # fmt: skip
        own = ((Z - self.centroids_[self.labels_]) ** 2).sum(1)
        self.variance_ = max(float(own.mean()), 1e-12)
        self.proba_ = self._proba(Z)
        if sampled:  # the fitted steps place every code, in chunks
            self.embedding_, self.proba_, self.labels_ = self._place_in_chunks(X_all)
        return self

    def _place_in_chunks(
        self, X: np.ndarray, chunk: int = 2048
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The embedding (float32), soft assignments and clusters of every row of X, placed a
        chunk at a time (X may compute its rows when indexed, see `predict.EncodedImages`)."""
        n = len(X)
        proba, labels = np.empty((n, self.n_clusters)), np.empty(n, dtype=np.int64)
        embedding = None
        for i in range(0, n, chunk):
            Z = self._reduce(X[i : i + chunk])
            if embedding is None:
                embedding = np.empty((n, Z.shape[1]), dtype=np.float32)
            embedding[i : i + chunk], proba[i : i + chunk] = Z, self._proba(Z)
            labels[i : i + chunk] = self._labels(Z)
        return embedding, proba, labels

    @classmethod
    def prefitted_head(cls, cluster_cfg: dict) -> ClusterPipeline:
        """A pipeline around a checkpoint's trained clustering head, which needs no fitting."""
        if cluster_cfg["reduce"] or cluster_cfg["method"]["name"] != "head":
            raise InputError("only a trained head on the raw codes clusters without fitting")
        pipe = cls(method=cluster_cfg["method"], n_clusters=cluster_cfg["n_clusters"])
        pipe.reducers_ = []
        pipe.clusterer_ = build_step(CLUSTERERS, cluster_cfg["method"], pipe.n_clusters, seed=0)
        return pipe

    def _reduce(self, X: np.ndarray) -> np.ndarray:
        Z = check_array(X, dtype=np.float64)
        for step in self.reducers_:
            Z = step.transform(Z)
        return Z

    def _proba(self, Z: np.ndarray) -> np.ndarray:
        if hasattr(self.clusterer_, "predict_proba"):
            return self.clusterer_.predict_proba(Z)
        return gaussian_memberships(Z, self.centroids_, self.variance_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(N, k) soft assignments of new codes."""
        return self._proba(self._reduce(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Clusters of new codes: the clusterer's own `predict` where it has one, else the
        nearest centroid (e.g. agglomerative clustering)."""
        return self._labels(self._reduce(X))

    def _labels(self, Z: np.ndarray) -> np.ndarray:
        if hasattr(self.clusterer_, "predict"):
            return np.asarray(self.clusterer_.predict(Z), dtype=np.int64)
        return self._proba(Z).argmax(1).astype(np.int64)


def pipeline_from_recipe(cluster_cfg: dict, n_clusters: int | None = None) -> ClusterPipeline:
    return ClusterPipeline(
        reduce=cluster_cfg["reduce"],
        method=cluster_cfg["method"],
        n_clusters=cluster_cfg["n_clusters"] if n_clusters is None else n_clusters,
        seed=cluster_cfg["seed"],
        fit_sample=cluster_cfg["fit_sample"],
    )
