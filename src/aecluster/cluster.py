"""Reduction and clustering of latent codes, as one scikit-learn-style estimator.

A pipeline is data: `reduce` is a list of steps `{"name": ..., **params}` from REDUCERS, `method`
one step from CLUSTERERS. Every random_state is the pipeline's `seed`.
"""

from __future__ import annotations

from collections.abc import Callable
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
        self.embedding_ = np.asarray(tsne.fit(X))
        return self.embedding_

    def fit(self, X: np.ndarray, y: Any = None) -> TSNE:
        self.fit_transform(X)
        return self


def _kernel_pca(n_components: int = 200, kernel: str = "rbf", seed: int = 0, **kw: Any):
    return KernelPCA(
        n_components=n_components, kernel=kernel, eigen_solver="randomized", random_state=seed, **kw
    )


REDUCERS: dict[str, Callable[..., Any]] = {
    "pca": lambda n_components=50, seed=0, **kw: PCA(n_components, random_state=seed, **kw),
    "kernel_pca": _kernel_pca,
    "tsne": lambda seed=0, **kw: TSNE(random_state=seed, **kw),
    "normalize": lambda seed=0: Normalizer(),
    "standardize": lambda seed=0: StandardScaler(),
}

CLUSTERERS: dict[str, Callable[..., Any]] = {
    "kmeans": lambda k, seed=0, n_init=10, **kw: KMeans(k, n_init=n_init, random_state=seed, **kw),
    "minibatch_kmeans": lambda k, seed=0, **kw: MiniBatchKMeans(k, random_state=seed, **kw),
    "gmm": lambda k, seed=0, n_init=1, **kw: GaussianMixture(
        k, n_init=n_init, random_state=seed, **kw
    ),
    "agglomerative": lambda k, seed=0, **kw: AgglomerativeClustering(k, **kw),
    "scan": lambda k, seed=0, **kw: SCAN(k, random_state=seed, **kw),
    "head": lambda k, seed=0, **kw: ClusterHead(k, **kw),
}


def build_step(registry: dict[str, Callable[..., Any]], spec: dict, *args: Any, seed: int) -> Any:
    params = dict(spec)
    name = params.pop("name", None)
    if name not in registry:
        raise InputError(f"unknown step {name!r}; known: {', '.join(sorted(registry))}")
    try:
        return registry[name](*args, seed=seed, **params)
    except TypeError as e:
        raise InputError(f"step {name!r}: bad parameters {params} ({e})") from None


class ClusterPipeline(ClusterMixin, BaseEstimator):
    """Reduce (e.g. KernelPCA -> t-SNE), then cluster.

    After `fit`, `labels_` holds the clusters and `embedding_` the last reduced representation
    (2-D after t-SNE), which the report plots.
    """

    def __init__(
        self,
        reduce: list[dict] | tuple = (),
        method: dict | None = None,
        n_clusters: int = 2,
        seed: int = 0,
    ) -> None:
        self.reduce = reduce
        self.method = method
        self.n_clusters = n_clusters
        self.seed = seed

    def reduce_transform(self, X: np.ndarray) -> np.ndarray:
        """Run only the reduction steps (fitting them) and return the result."""
        Z = check_array(X, dtype=np.float64)
        for spec in self.reduce:
            step = build_step(REDUCERS, spec, seed=self.seed)
            n_components = getattr(step, "n_components", None)
            if n_components is not None and n_components >= min(Z.shape):
                step.set_params(n_components=max(1, min(Z.shape) - 1))
            Z = step.fit_transform(Z)
        return Z

    def fit(self, X: np.ndarray, y: Any = None) -> ClusterPipeline:
        if self.n_clusters < 2:
            raise InputError(f"n_clusters must be at least 2, got {self.n_clusters}")
        if len(X) < self.n_clusters:
            raise InputError(f"{len(X)} images cannot form {self.n_clusters} clusters")
        self.embedding_ = self.reduce_transform(X)
        method = self.method or {"name": "kmeans"}
        clusterer = build_step(CLUSTERERS, method, self.n_clusters, seed=self.seed)
        self.labels_ = np.asarray(clusterer.fit_predict(self.embedding_), dtype=np.int64)
        return self


def check_cluster_config(cluster_cfg: dict) -> None:
    """Refuse unknown reduction or clustering steps before any work is done."""
    for spec, registry in [*((s, REDUCERS) for s in cluster_cfg["reduce"]),
                           (cluster_cfg["method"], CLUSTERERS)]:  # fmt: skip
        if spec.get("name") not in registry:
            raise InputError(
                f"unknown step {spec.get('name')!r}; known: {', '.join(sorted(registry))}"
            )


def pipeline_from_recipe(cluster_cfg: dict, n_clusters: int | None = None) -> ClusterPipeline:
    check_cluster_config(cluster_cfg)
    return ClusterPipeline(
        reduce=cluster_cfg["reduce"],
        method=cluster_cfg["method"],
        n_clusters=n_clusters or cluster_cfg["n_clusters"],
        seed=cluster_cfg["seed"],
    )
