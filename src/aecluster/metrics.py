"""Label-permutation-invariant clustering scores."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, confusion_matrix, normalized_mutual_info_score


def best_mapping(y_true: np.ndarray, y_pred: np.ndarray) -> dict[int, int]:
    """The cluster -> class assignment that maximises agreement (Hungarian matching)."""
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    counts = confusion_matrix(y_true, y_pred, labels=np.union1d(classes, clusters))
    labels = np.union1d(classes, clusters)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return {int(labels[c]): int(labels[r]) for r, c in zip(rows, cols, strict=True)}


def cluster_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Accuracy under the best one-to-one matching of clusters to classes.

    For two clusters this equals max(acc, 1 - acc).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    mapping = best_mapping(y_true, y_pred)
    mapped = np.array([mapping.get(int(c), -1) for c in y_pred])
    return float(np.mean(mapped == y_true))


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": cluster_accuracy(y_true, y_pred),
        "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
    }
