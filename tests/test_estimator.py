"""AECluster against scikit-learn's conventions, and the README's example, run as written."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import REPO, TINY, two_kinds
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from aecluster import AECluster
from aecluster.errors import InputError
from aecluster.metrics import scores


def tiny(**kw) -> AECluster:
    defaults = {"n_clusters": 2, "recipe": "baseline", "settings": tuple(TINY),
                "budget_minutes": None, "device": "cpu"}  # fmt: skip
    return AECluster(**{**defaults, **kw})


@pytest.fixture(scope="module")
def fitted():
    images, y = two_kinds(96)
    return tiny().fit(images), images, y


def test_parameters_follow_scikit_learn(fitted):
    est = tiny(random_state=3)
    assert est.get_params()["random_state"] == 3
    assert clone(est).get_params() == est.get_params()
    assert est.set_params(n_clusters=4).n_clusters == 4
    assert "labels_" not in vars(clone(fitted[0]))


def test_fit_returns_self_and_sets_the_fitted_attributes(fitted):
    est, images, y = fitted
    assert est.labels_.shape == (96,) and est.codes_.shape[0] == 96
    assert scores(y, est.labels_)["accuracy"] == 1.0
    assert est.paths_ is None and est.skipped_ == []
    assert np.allclose(est.proba_.sum(1), 1)


def test_predict_places_new_images_without_refitting(fitted):
    est, images, _ = fitted
    new, new_y = two_kinds(40, seed=7)
    assert np.array_equal(est.predict(images), est.labels_)
    predicted = est.predict(new)
    assert scores(new_y, predicted)["accuracy"] == 1.0
    proba = est.predict_proba(new)
    assert proba.shape == (40, 2) and np.allclose(proba.sum(1), 1)
    assert np.array_equal(proba.argmax(1), predicted)
    assert est.transform(new).shape == (40, est.codes_.shape[1])


def test_same_seed_same_clusters(fitted):
    est, images, _ = fitted
    assert np.array_equal(tiny().fit_predict(images), est.labels_)


def test_save_and_load_round_trip(fitted, tmp_path):
    est, images, _ = fitted
    est.save(tmp_path / "m.pth")
    again = AECluster.load(tmp_path / "m.pth", images=images)
    assert np.array_equal(again.labels_, est.labels_)
    assert np.array_equal(again.predict(images[:10]), est.predict(images[:10]))


def test_invalid_parameters_and_inputs_are_clear(tmp_path):
    with pytest.raises(InvalidParameterError, match="n_clusters"):
        tiny(n_clusters=1).fit(two_kinds(8)[0])
    with pytest.raises(InputError, match="device"):
        tiny(device="tpu").fit(two_kinds(8)[0])
    with pytest.raises(InputError, match="values range over"):
        tiny().fit(two_kinds(8)[0].astype(np.int64) * 3)
    with pytest.raises(InputError, match="not found"):
        tiny().fit(str(tmp_path / "nothing.npy"))
    with pytest.raises(NotFittedError):
        tiny().predict(two_kinds(8)[0])


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    readme = (REPO / "README.md").read_text()
    example = re.search(r"<!-- estimator-example -->\s*```python\n(.*?)```", readme, re.S)
    assert example, "the README's estimator example is missing"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example.group(1), "README.md", "exec"), namespace)
    assert namespace["labels"].shape == (1797,)
    assert (tmp_path / "digits.pth").exists()


def test_auto_chooses_the_number_of_clusters_without_labels():
    images, y = two_kinds(96)
    est = tiny(n_clusters="auto", k_range=(2, 5)).fit(images)
    assert est.n_clusters_ == 2 and sorted(est.k_scores_) == [2, 3, 4, 5]
    assert est.k_scores_[2] == max(est.k_scores_.values())
    assert scores(y, est.labels_)["accuracy"] == 1.0
