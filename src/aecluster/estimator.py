"""`AECluster`: the package's front door, a scikit-learn estimator.

    from aecluster import AECluster
    model = AECluster(n_clusters=8).fit("photos/")      # a folder, paths, a glob, an array
    model.labels_, model.paths_                          # clusters of the training images
    model.predict(["new/a.jpg", "new/b.png"])            # new images, without refitting
    model.save("photos.pth"); AECluster.load("photos.pth")

`fit` trains the recipe's autoencoder (within `budget_minutes`), embeds the images and fits the
recipe's reduction and clustering; `predict`, `predict_proba` and `transform` place new images
with the fitted steps. The CLI and the homework scripts are thin layers over the same functions.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.validation import check_is_fitted

from aecluster.checkpoint import load_checkpoint, load_model, model_from_state, save_checkpoint
from aecluster.cluster import ClusterPipeline
from aecluster.device import DEVICES, resolve_device
from aecluster.errors import InputError
from aecluster.predict import embed, fit_cluster_pipeline
from aecluster.recipes import apply_overrides, load_recipe
from aecluster.selection import choose_n_clusters
from aecluster.sources import ImageSet, Source, read_images
from aecluster.training import train


class InvalidSetting(InputError, InvalidParameterError):
    """A constructor parameter out of its declared range: scikit-learn's error type, and the
    CLI's one-line message."""


class AECluster(ClusterMixin, TransformerMixin, BaseEstimator):
    """Cluster unlabelled images with a self-supervised autoencoder.

    Parameters
    ----------
    n_clusters : number of clusters (2 to 10,000), or `auto`: chosen without labels from
        `k_range` by the silhouette of the trained codes (`k_scores_` holds every k's score).
    recipe : a built-in recipe name (`best`, `improved`, `baseline`, `demo`) or a TOML file.
    budget_minutes : training plans its epochs (more or fewer than the recipe's) to use 90-100%
        of this many minutes, from the speed it measures; None trains the recipe's own length
        (reproducible: the same seed, data and machine give the same model).
    device : `auto` (a GPU when torch sees one), `cpu`, `cuda` or `mps`.
    random_state : seed of training and clustering.
    settings : extra recipe settings, as for `--set` (e.g. `("train.epochs=5",)`).
    strict : unreadable image files are an error instead of being skipped.
    verbose : progress bars.

    Attributes (after `fit`)
    ------------------------
    labels_ : (N,) cluster of each training image; `paths_` their file names (None for an
        array); `skipped_` (path, reason) of files that could not be read; `codes_` (N, d)
        latent codes; `proba_` (N, k) soft assignments; `recipe_` the recipe trained;
        `model_` the trained autoencoder; `train_summary_` epochs, minutes and loss.
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 2, 10_000, closed="both"), StrOptions({"auto"})],
        "k_range": [tuple, list],
        "recipe": [str, os.PathLike],
        "budget_minutes": [Interval(Real, 0, None, closed="neither"), None],
        "device": [StrOptions(set(DEVICES))],
        "random_state": [Interval(Integral, 0, 2**32 - 1, closed="both")],
        "settings": [list, tuple],
        "strict": ["boolean"],
        "verbose": ["boolean"],
    }

    def __init__(
        self,
        n_clusters: int | str = 8,
        recipe: str | os.PathLike = "best",
        budget_minutes: float | None = 10.0,
        device: str = "auto",
        random_state: int = 0,
        settings: tuple[str, ...] | list[str] = (),
        strict: bool = False,
        verbose: bool = False,
        k_range: tuple[int, int] = (2, 10),
    ) -> None:
        self.n_clusters = n_clusters
        self.recipe = recipe
        self.budget_minutes = budget_minutes
        self.device = device
        self.random_state = random_state
        self.settings = settings
        self.strict = strict
        self.verbose = verbose
        self.k_range = k_range

    def _validate(self) -> None:
        try:
            self._validate_params()
        except InvalidParameterError as e:
            raise InvalidSetting(str(e)) from None

    def _recipe(self) -> dict:
        k = self.k_range[0] if self.n_clusters == "auto" else self.n_clusters
        fixed = [f"cluster.n_clusters={k}", f"train.seed={self.random_state}",
                 f"cluster.seed={self.random_state}",
                 f"train.fill_budget={str(self.budget_minutes is not None).lower()}"]  # fmt: skip
        return apply_overrides(load_recipe(self.recipe), [*fixed, *self.settings])

    def _images(self, X: Source | ImageSet, cache: str | os.PathLike | None = None) -> ImageSet:
        if isinstance(X, ImageSet):
            return X
        return read_images(X, strict=self.strict, progress=self.verbose, cache=cache)

    def fit(self, X: Source | ImageSet, y: Any = None, *, out: str | os.PathLike | None = None,
            run_dir: str | os.PathLike | None = None) -> AECluster:  # fmt: skip
        """Train on images X (an array, an .npy, a folder, a path list, a glob or paths).

        `out` keeps the checkpoint (else it lives in a temp folder until `save`); `run_dir`
        holds the epoch checkpoints, so a rerun resumes, and image files decoded once.
        """
        self._validate()
        data = self._images(X, cache=run_dir)  # image files decoded once, kept in the run folder
        recipe = self._recipe()
        self.k_scores_: dict[int, float] = {}
        choose = None
        if self.n_clusters == "auto":
            k_range = tuple(self.k_range)

            def choose(codes: np.ndarray) -> int:
                k, self.k_scores_ = choose_n_clusters(codes, k_range, self.random_state)
                return k

        with contextlib.ExitStack() as stack:
            if out is None:
                out = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "model.pth"
            self.train_summary_ = train(
                data.images, recipe, out, run_dir=run_dir, budget_minutes=self.budget_minutes,
                progress=self.verbose, device=self.device, choose_clusters=choose,
                clusters_after=True,
            )  # fmt: skip
            self._adopt(load_checkpoint(out))
        self.paths_, self.skipped_ = data.paths, data.skipped
        self.codes_ = self.transform(data)
        self._fit_clustering(self.codes_)
        self.n_clusters_ = self.recipe_["cluster"]["n_clusters"]
        return self

    def _adopt(self, state: dict) -> None:
        self.checkpoint_state_ = state
        self.model_, self.recipe_ = model_from_state(state)
        self.model_.to(resolve_device(self.device))

    def _fit_clustering(self, codes: np.ndarray) -> None:
        self.pipeline_: ClusterPipeline = fit_cluster_pipeline(codes, self.recipe_)
        self.labels_ = self.pipeline_.labels_
        self.proba_ = self.pipeline_.proba_
        self.embedding_ = self.pipeline_.embedding_

    def transform(self, X: Source | ImageSet) -> np.ndarray:
        """Latent codes (N, d) of images."""
        check_is_fitted(self, "model_")
        tta = self.recipe_["cluster"]["tta"]
        return embed(self.model_, self._images(X).images, self.verbose, tta)

    def predict(self, X: Source | ImageSet) -> np.ndarray:
        """Clusters of new images, with the fitted model and clustering (nothing is refitted)."""
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict(self.transform(X))

    def predict_proba(self, X: Source | ImageSet) -> np.ndarray:
        """(N, k) soft cluster assignments of new images; rows sum to 1."""
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict_proba(self.transform(X))

    def fit_predict(self, X: Source | ImageSet, y: Any = None, **fit_params: Any) -> np.ndarray:
        return self.fit(X, **fit_params).labels_

    def save(self, path: str | os.PathLike) -> None:
        """Write the model in the CLI's checkpoint format (`aecluster predict` reads it)."""
        check_is_fitted(self, "checkpoint_state_")
        state = {k: v for k, v in self.checkpoint_state_.items() if k not in ("format", "checksum")}
        save_checkpoint(path, state)

    @classmethod
    def load(
        cls, path: str | os.PathLike, images: Source | None = None, **params: Any
    ) -> AECluster:
        """An estimator from a checkpoint (of `save`, `aecluster train` or a homework script).

        Its clustering is fitted on `images` when given (as `hw9_best.sh` clusters trainX), or,
        for a checkpoint whose clustering is a trained head, needs no images at all.
        """
        model, recipe = load_model(path)
        est = cls(n_clusters=recipe["cluster"]["n_clusters"], recipe=recipe["name"],
                  random_state=recipe["cluster"]["seed"], **params)  # fmt: skip
        est.checkpoint_state_ = load_checkpoint(path)
        est.model_, est.recipe_ = model.to(resolve_device(est.device)), recipe
        if images is not None:
            data = est._images(images)
            est.paths_, est.skipped_ = data.paths, data.skipped
            est.codes_ = est.transform(data)
            est._fit_clustering(est.codes_)
        elif recipe["cluster"]["method"]["name"] == "head" and not recipe["cluster"]["reduce"]:
            est.pipeline_ = ClusterPipeline.prefitted_head(recipe["cluster"])
        return est
