"""SCAN-style clustering of fixed features (Van Gansbeke et al., 2020), as a sklearn estimator.

Mine each point's nearest neighbours; train clustering heads so that a point and its neighbours
get the same cluster, with an entropy term that keeps clusters from collapsing; keep the head with
the lowest loss (a label-free choice); then self-label: fit the head to its own confident
predictions. Runs on the latent codes, so it costs seconds, not a retraining.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_array
from torch import nn

from aecluster.errors import InputError


def scan_features(codes: torch.Tensor, mean: np.ndarray, scale: np.ndarray) -> torch.Tensor:
    """Standardised, then L2-normalised codes: what the heads see and neighbours are mined in."""
    mean, scale = (torch.from_numpy(np.asarray(v)).to(codes.device) for v in (mean, scale))
    return F.normalize((codes - mean) / scale, dim=1)


def scan_loss(
    anchor_logits: torch.Tensor, neighbor_logits: torch.Tensor, entropy_weight: float
) -> torch.Tensor:
    """-log <p(anchor), p(neighbour)> minus entropy_weight * entropy of the mean prediction.

    Logits are (B, k), or (heads, B, k) for one loss per head.
    """
    pa, pn = anchor_logits.softmax(-1), neighbor_logits.softmax(-1)
    consistency = -torch.log((pa * pn).sum(-1).clamp_min(1e-8)).mean(-1)
    mean = pa.mean(-2)
    entropy = -(mean * torch.log(mean.clamp_min(1e-8))).sum(-1)
    return consistency - entropy_weight * entropy


class LinearHeads(nn.Module):
    """`n` linear clustering heads over the same codes, as one matrix product: (B, d) codes ->
    (n, B, k) logits."""

    def __init__(self, n: int, dim: int, k: int) -> None:
        super().__init__()
        heads = [nn.Linear(dim, k) for _ in range(n)]  # torch's initialisation, head by head
        self.weight = nn.Parameter(torch.stack([h.weight.detach().T for h in heads]))
        self.bias = nn.Parameter(torch.stack([h.bias.detach() for h in heads])[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, dim, k = self.weight.shape
        # one (B, d) x (d, n * k) product
        logits = x @ self.weight.transpose(0, 1).reshape(dim, n * k)
        return logits.view(len(x), n, k).transpose(0, 1) + self.bias

    def head(self, i: int) -> nn.Linear:
        """Head `i` on its own."""
        linear = nn.Linear(*self.weight.shape[1:])
        with torch.no_grad():
            linear.weight.copy_(self.weight[i].T)
            linear.bias.copy_(self.bias[i, 0])
        return linear


# Up to this many points neighbours are exact (scikit-learn, brute force: O(N^2) time, memory
# bounded by its working_memory); above it faiss searches an inverted-file index (about 0.92 of
# the exact neighbours found; 10^6 points in about 100 s on 2 cores, against some 45 min exact).
EXACT_NEIGHBORS = 100_000


def nearest_neighbors(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices (N, k) of each row's k nearest other rows of the L2-normalised `x`."""
    if len(x) <= EXACT_NEIGHBORS:
        return NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)[1][:, 1:]
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    n_lists = int(4 * np.sqrt(len(x)))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(x.shape[1]), x.shape[1], n_lists,
                               faiss.METRIC_INNER_PRODUCT)  # fmt: skip
    index.cp.seed = seed
    sample = np.random.default_rng(seed).choice(len(x), min(len(x), 64 * n_lists), replace=False)
    index.train(x[np.sort(sample)])
    index.add(x)
    index.nprobe = 16
    found = index.search(x, k + 1)[1]
    # drop each row itself (normally its first hit), keeping k others
    others = np.argsort(found == np.arange(len(x))[:, None], axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, others, axis=1)


@torch.no_grad()
def pair_loss(
    heads: LinearHeads, x: torch.Tensor, neighbors: torch.Tensor, entropy_weight: float
) -> torch.Tensor:
    """Each head's SCAN loss over every (point, neighbour) pair, in chunks of points."""
    n_heads, k = len(heads.weight), neighbors.shape[1]
    chunk = max(1, 2**24 // (n_heads * k * heads.weight.shape[2]))  # about 64 MB of logits
    consistency, mean = torch.zeros(n_heads, dtype=torch.float64), 0.0
    for start in range(0, len(x), chunk):
        pa = heads(x[start : start + chunk]).softmax(-1)
        pn = heads(x[neighbors[start : start + chunk].flatten()]).softmax(-1)
        pa_rep = pa.repeat_interleave(k, 1)
        consistency += -torch.log((pa_rep * pn).sum(-1).clamp_min(1e-8)).double().sum(-1)
        mean = mean + pa.double().sum(1)
    mean = mean / len(x)
    entropy = -(mean * torch.log(mean.clamp_min(1e-8))).sum(-1)
    return (consistency / neighbors.numel() - entropy_weight * entropy).float()


def _batches(n: int, batch_size: int, steps: int, g: torch.Generator) -> Iterator[torch.Tensor]:
    """The first `steps` index batches of endless shuffled passes over range(n)."""
    passes = (torch.randperm(n, generator=g).split(batch_size) for _ in itertools.count())
    return itertools.islice(itertools.chain.from_iterable(passes), steps)


class SCAN(ClusterMixin, BaseEstimator):
    """Clustering heads trained on fixed codes for neighbour consistency (module docstring).

    The defaults were chosen by the three-set protocol (benchmarks/RESULTS.md): a fixed number of
    steps at lr 1e-2 rather than 40 epochs at 1e-3 (1,797 digits got 320 updates, too few to
    separate ten classes), and entropy weight 2 rather than SCAN's 5.
    """

    def __init__(
        self,
        n_clusters: int = 2,
        n_neighbors: int = 20,
        entropy_weight: float = 2.0,
        n_heads: int = 20,
        steps: int = 2000,
        self_label_epochs: int = 20,
        threshold: float = 0.95,
        noise: float = 0.1,
        lr: float = 1e-2,
        batch_size: int = 256,
        random_state: int = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.entropy_weight = entropy_weight
        self.n_heads = n_heads
        self.steps = steps
        self.self_label_epochs = self_label_epochs
        self.threshold = threshold
        self.noise = noise
        self.lr = lr
        self.batch_size = batch_size
        self.random_state = random_state

    def _features(self, X: np.ndarray) -> torch.Tensor:
        X = check_array(X, dtype=np.float32)
        return scan_features(torch.from_numpy(X), self.mean_, self.scale_)

    def fit(self, X: np.ndarray, y: Any = None) -> SCAN:
        g = torch.Generator().manual_seed(self.random_state)
        torch.manual_seed(self.random_state)
        X = check_array(X, dtype=np.float32)
        self.mean_, self.scale_ = X.mean(0), X.std(0) + 1e-6
        x = self._features(X)
        k = min(self.n_neighbors, len(X) - 1)
        neighbors = torch.from_numpy(nearest_neighbors(x.numpy(), k, self.random_state))
        self.neighbors_ = neighbors
        heads = self._train_heads(x, neighbors, g)
        final = pair_loss(heads, x, neighbors, self.entropy_weight)
        self.head_losses_ = final.numpy()
        head = heads.head(int(final.argmin()))
        self._self_label(head, x, g)
        with torch.no_grad():
            prob = head(x).softmax(1)
        self.head_ = head
        self.probabilities_ = prob.numpy()
        self.labels_ = prob.argmax(1).numpy().astype(np.int64)
        return self

    def _noisy(self, t: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return t + self.noise * torch.randn(t.shape, generator=g)

    def _train_heads(self, x: torch.Tensor, neighbors: torch.Tensor, g: torch.Generator
                     ) -> LinearHeads:  # fmt: skip
        """Step 1: n_heads linear heads trained together for neighbour consistency."""
        heads = LinearHeads(self.n_heads, x.shape[1], self.n_clusters)
        opt = torch.optim.Adam(heads.parameters(), lr=self.lr)
        k = neighbors.shape[1]
        # a number of steps, not epochs: 1,797 points need as many updates as 100,000 do
        for idx in _batches(len(x), self.batch_size, self.steps, g):
            pick = neighbors[idx, torch.randint(0, k, (len(idx),), generator=g)]
            # the heads share each step's noisy codes (they differ by their initialisation): one
            # draw and one matrix product instead of one per head: 5-10x faster on a CPU
            anchors, others = self._noisy(x[idx], g), self._noisy(x[pick], g)
            loss = scan_loss(heads(anchors), heads(others), self.entropy_weight).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return heads

    def _self_label(self, head: nn.Module, x: torch.Tensor, g: torch.Generator) -> None:
        """Step 3: train `head` in place on its own confident predictions."""
        opt = torch.optim.Adam(head.parameters(), lr=self.lr)
        for _ in range(self.self_label_epochs):
            with torch.no_grad():
                prob = head(x).softmax(1)
            confident = (prob.max(1).values > self.threshold).nonzero().flatten()
            targets = prob.argmax(1)
            counts = torch.bincount(targets[confident], minlength=self.n_clusters).float()
            if counts.min() == 0:
                # a cluster without confident members would be trained away: stop instead
                return
            # weight classes inversely to their size among the confident, as SCAN does
            weight = (counts.sum() / counts.clamp_min(1)) / self.n_clusters
            order = confident[torch.randperm(len(confident), generator=g)]
            for idx in order.split(self.batch_size):
                loss = F.cross_entropy(head(self._noisy(x[idx], g)), targets[idx], weight=weight)
                opt.zero_grad()
                loss.backward()
                opt.step()

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.head_(self._features(X)).softmax(1).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(1).astype(np.int64)


class ClusterHead(ClusterMixin, BaseEstimator):
    """A trained SCAN head kept in a checkpoint: softmax(weight @ scan_features(codes) + bias).

    Training with a `finetune` phase stores it as the recipe's clustering method; `fit` trains
    nothing, it only checks the codes and labels them.
    """

    def __init__(
        self,
        n_clusters: int,
        mean: list[float],
        scale: list[float],
        weight: list[list[float]],
        bias: list[float],
    ) -> None:
        self.n_clusters = n_clusters
        self.mean = mean
        self.scale = scale
        self.weight = weight
        self.bias = bias

    @classmethod
    def from_scan(cls, scan: SCAN) -> ClusterHead:
        return cls(
            scan.n_clusters, scan.mean_.tolist(), scan.scale_.tolist(),
            scan.head_.weight.tolist(), scan.head_.bias.tolist(),
        )  # fmt: skip

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = check_array(X, dtype=np.float32)
        weight = np.asarray(self.weight, dtype=np.float32)
        if len(weight) != self.n_clusters:
            raise InputError(
                f"this checkpoint's clustering head makes {len(weight)} clusters, not "
                f"{self.n_clusters}; cluster another way, "
                "e.g. --set \"cluster.method={name='scan'}\""
            )
        if X.shape[1] != weight.shape[1]:
            raise InputError(
                f"the clustering head takes {weight.shape[1]}-d latent codes, got {X.shape[1]}-d "
                "ones; it needs cluster.reduce = []"
            )
        mean, scale = (np.asarray(v, dtype=np.float32) for v in (self.mean, self.scale))
        with torch.no_grad():
            x = scan_features(torch.from_numpy(X), mean, scale)
            logits = x @ torch.from_numpy(weight).T + torch.tensor(self.bias)
        return logits.softmax(1).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(1).astype(np.int64)

    def fit(self, X: np.ndarray, y: Any = None) -> ClusterHead:
        self.labels_ = self.predict(X)
        return self
