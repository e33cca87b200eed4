import numpy as np
import pytest
from sklearn.datasets import make_blobs

from aecluster.cluster import ClusterPipeline, pipeline_from_recipe
from aecluster.errors import InputError
from aecluster.metrics import cluster_accuracy, scores


def test_accuracy_is_permutation_invariant_and_max_acc_for_two():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert cluster_accuracy(y, np.array([2, 2, 0, 0, 1, 1])) == 1.0
    y2 = np.array([0, 1, 1, 0, 1])
    p2 = np.array([1, 1, 0, 0, 0])
    acc = np.mean(y2 == p2)
    assert cluster_accuracy(y2, p2) == pytest.approx(max(acc, 1 - acc))
    assert scores(y, y) == {"accuracy": 1.0, "nmi": 1.0, "ari": 1.0}


def test_more_clusters_than_classes_counts_unmatched_as_wrong():
    assert cluster_accuracy(np.array([0, 0, 1, 1]), np.array([0, 1, 2, 2])) == 0.75


@pytest.mark.parametrize(
    ("reduce", "method"),
    [
        (
            [{"name": "kernel_pca", "n_components": 10}, {"name": "tsne"}],
            {"name": "minibatch_kmeans"},
        ),
        ([{"name": "normalize"}, {"name": "pca", "n_components": 5}], {"name": "kmeans"}),
        ([{"name": "standardize"}], {"name": "agglomerative"}),
    ],
)
def test_pipelines_recover_separated_blobs(reduce, method):
    X, y = make_blobs(300, n_features=20, centers=3, cluster_std=0.5, random_state=0)
    X += 20  # keep away from the origin so normalize keeps the blobs apart
    pipe = ClusterPipeline(reduce, method, n_clusters=3, seed=0)
    labels = pipe.fit_predict(X)
    assert cluster_accuracy(y, labels) > 0.95
    assert pipe.embedding_.shape[0] == 300
    assert np.array_equal(labels, ClusterPipeline(reduce, method, 3, seed=0).fit_predict(X))


def test_pipeline_errors():
    X = np.random.default_rng(0).normal(size=(3, 4))
    with pytest.raises(InputError, match="3 images cannot form 5 clusters"):
        ClusterPipeline([], {"name": "kmeans"}, n_clusters=5).fit(X)
    with pytest.raises(InputError, match="unknown step"):
        ClusterPipeline([{"name": "magic"}], {"name": "kmeans"}, 2).fit(X)
    with pytest.raises(InputError, match="at least 2"):
        ClusterPipeline([], {"name": "kmeans"}, 1).fit(X)


def test_scan_head_separates_neighbourhoods_and_picks_a_head_without_labels():
    from aecluster.scan import SCAN, scan_loss

    X, y = make_blobs(400, n_features=8, centers=2, cluster_std=1.0, random_state=1)
    scan = SCAN(n_clusters=2, steps=20, self_label_epochs=5, random_state=0)
    labels = scan.fit_predict(X)
    assert cluster_accuracy(y, labels) > 0.95
    assert scan.head_losses_.shape == (scan.n_heads,)
    assert np.allclose(scan.probabilities_.sum(1), 1, atol=1e-5)
    assert np.array_equal(labels, SCAN(2, steps=20, self_label_epochs=5).fit_predict(X))

    import torch

    same = torch.tensor([[5.0, -5.0], [-5.0, 5.0]])
    assert scan_loss(same, same, 1.0) < scan_loss(same, same.flip(0), 1.0)


def test_batched_heads_score_each_head_as_if_it_were_alone():
    import torch

    from aecluster.scan import LinearHeads, pair_loss, scan_loss

    torch.manual_seed(0)
    heads = LinearHeads(5, 8, 3)
    x, other = torch.randn(40, 8), torch.randn(40, 8)
    logits = heads(x)
    assert logits.shape == (5, 40, 3)
    alone = [heads.head(i) for i in range(5)]
    assert all(torch.allclose(logits[i], h(x), atol=1e-6) for i, h in enumerate(alone))
    batched = scan_loss(logits, heads(other), 2.0)
    assert torch.allclose(batched, torch.stack([scan_loss(h(x), h(other), 2.0) for h in alone]))
    neighbors = torch.randint(0, 40, (40, 4))
    pairs = pair_loss(heads, x, neighbors, 2.0)
    for i, h in enumerate(alone):  # every (point, neighbour) pair, written out for one head
        pa = h(x).softmax(1).repeat_interleave(4, 0)
        pn = h(x[neighbors.flatten()]).softmax(1)
        mean = h(x).softmax(1).mean(0)
        expected = -torch.log((pa * pn).sum(1)).mean() + 2.0 * (mean * mean.log()).sum()
        assert torch.isclose(pairs[i], expected, atol=1e-5)


def test_a_recipe_passes_parameters_to_its_clustering_method():
    from aecluster.recipes import apply_overrides, load_recipe

    recipe = apply_overrides(load_recipe("best"), ["cluster.method={name='gmm',n_init=2}"])
    pipe = pipeline_from_recipe(recipe["cluster"])
    assert pipe.method == {"name": "gmm", "n_init": 2}
    X, y = make_blobs(200, centers=2, n_features=40, random_state=0)
    assert cluster_accuracy(y, pipe.fit_predict(X)) == 1.0


@pytest.mark.parametrize(
    "reduce, method",
    [
        (
            [{"name": "kernel_pca", "n_components": 5}, {"name": "tsne"}],
            {"name": "minibatch_kmeans"},
        ),
        ([], {"name": "scan", "n_heads": 2, "steps": 10, "self_label_epochs": 2}),
        ([{"name": "pca", "n_components": 3}], {"name": "agglomerative"}),
    ],
)
def test_above_fit_sample_the_steps_are_fitted_on_a_sample_and_place_the_rest(reduce, method):

    rng = np.random.default_rng(0)
    y = np.arange(600) % 2
    X = rng.normal(size=(600, 8)) + 6 * y[:, None]
    pipe = ClusterPipeline(reduce=reduce, method=method, fit_sample=150).fit(X)
    assert pipe.labels_.shape == (600,) and pipe.proba_.shape == (600, 2)
    assert len(pipe.embedding_) == 600
    assert scores(y, pipe.labels_)["accuracy"] >= 0.99
    small = ClusterPipeline(reduce=reduce, method=method).fit(X[:150])
    assert len(small.embedding_) == 150  # below the threshold nothing changes
