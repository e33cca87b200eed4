"""Label-free checkpoint selection.

Val accuracy can swing by 0.1 between checkpoints of one run (the rotation loss overfits, the
reports saw the same), and no labels may choose among them. A checkpoint whose latent space has
real clusters gives the same partition whichever images and whichever clusterer find it; one
whose clusters are an accident of initialisation does not. So each checkpoint is scored by the
agreement of partitions found on random subsets by KMeans and by a Gaussian mixture, and the
recipe's `select.checkpoint` rule picks among the scored checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations

import numpy as np
from sklearn.metrics import adjusted_rand_score, silhouette_score

from aecluster.cluster import CLUSTERERS, ClusterPipeline, build_step
from aecluster.errors import InputError

AUTO_K_REDUCE = ({"name": "normalize"}, {"name": "pca", "n_components": 32})
STABILITY_CLUSTERERS = ({"name": "kmeans", "n_init": 3}, {"name": "gmm"})


def partition_stability(
    codes: np.ndarray,
    n_clusters: int,
    reduce: list[dict] | tuple = (),
    resamples: int = 4,
    fraction: float = 0.5,
    seed: int = 0,
) -> float:
    """Mean pairwise adjusted Rand index of partitions of all `codes`.

    Each partition comes from KMeans or a Gaussian mixture fitted on a random `fraction` of the
    codes (after the `reduce` steps) and applied to all of them: 1.0 when every subset and both
    clusterers agree, near 0 when the clusters are arbitrary.
    """
    Z = ClusterPipeline(reduce=reduce, seed=seed).reduce_transform(codes)
    size = max(2 * n_clusters, int(fraction * len(Z)))
    if size > len(Z):
        raise InputError(f"{len(Z)} codes are too few to score {n_clusters}-cluster stability")
    rng = np.random.default_rng(seed)
    partitions = []
    for r in range(resamples):
        subset = Z[rng.choice(len(Z), size, replace=False)]
        for spec in STABILITY_CLUSTERERS:
            clusterer = build_step(CLUSTERERS, spec, n_clusters, seed=seed + r).fit(subset)
            partitions.append(clusterer.predict(Z))
    return float(np.mean([adjusted_rand_score(a, b) for a, b in combinations(partitions, 2)]))


# each rule maps the scored checkpoints' metric rows (in epoch order) to the chosen row
SELECTORS: dict[str, Callable[[list[dict]], dict]] = {
    "last": lambda rows: rows[-1],
    "stability": lambda rows: max(rows, key=lambda row: row["stability"]),
}


def check_select_config(select_cfg: dict) -> None:
    if select_cfg["checkpoint"] not in SELECTORS:
        raise InputError(
            f"select.checkpoint must be one of {', '.join(SELECTORS)}, "
            f"not {select_cfg['checkpoint']!r}"
        )


def needs_stability(select_cfg: dict) -> bool:
    return select_cfg["checkpoint"] == "stability"


def choose_checkpoint(rows: list[dict], select_cfg: dict) -> int:
    """The epoch of the checkpoint the recipe's rule picks from its metric rows."""
    check_select_config(select_cfg)
    if not rows:
        raise InputError("no checkpoints to choose from")
    return int(SELECTORS[select_cfg["checkpoint"]](rows)["epoch"])


def choose_n_clusters(
    codes: np.ndarray, k_range: tuple[int, int] = (2, 10), seed: int = 0, sample: int = 2000
) -> tuple[int, dict[int, float]]:
    """The number of clusters in `k_range` (inclusive) whose KMeans partition of the
    normalised, PCA-reduced codes has the highest silhouette, and every k's silhouette."""
    Z = ClusterPipeline(reduce=AUTO_K_REDUCE, seed=seed).reduce_transform(codes)
    lo, hi = k_range[0], min(k_range[1], len(Z) - 1)
    if hi < lo:
        raise InputError(f"{len(Z)} images are too few to choose among {k_range[0]}+ clusters")
    scores = {}
    for k in range(lo, hi + 1):
        labels = build_step(CLUSTERERS, {"name": "kmeans", "n_init": 3}, k, seed=seed).fit_predict(
            Z
        )
        scores[k] = float(silhouette_score(Z, labels, sample_size=min(sample, len(Z)),
                                           random_state=seed))  # fmt: skip
    return max(scores, key=scores.get), scores
