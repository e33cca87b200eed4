"""Test-time augmentation (`cluster.tta`): the code clustered is the mean over fixed views."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import two_kinds
from test_estimator import tiny

from aecluster.errors import InputError
from aecluster.models import build_model
from aecluster.predict import NO_TTA, embed, n_tta_views, tta_views
from aecluster.recipes import apply_overrides, load_recipe

ALL = {"flip": True, "crops": 5, "scale": 0.75}


def test_without_tta_the_only_view_is_the_image():
    x = torch.rand(2, 3, 8, 8)
    assert len(tta_views(x, NO_TTA)) == 1 and torch.equal(tta_views(x, NO_TTA)[0], x)


def test_the_views_are_corner_and_centre_crops_and_their_mirrors():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    views = tta_views(x, ALL)
    assert len(views) == n_tta_views(ALL) == 12
    assert all(v.shape == x.shape for v in views)
    assert torch.equal(views[0], x) and torch.equal(views[6], x.flip(-1))
    # a crop of 6 of the 8 pixels, resized back: its corners are the crop's corners
    top_left, bottom_right, centre = views[1], views[4], views[5]
    assert top_left[..., 0, 0].equal(x[..., 0, 0])
    assert bottom_right[..., -1, -1].equal(x[..., -1, -1])
    assert centre[..., 0, 0].equal(x[..., 1, 1]) and centre[..., -1, -1].equal(x[..., 6, 6])
    for plain, mirrored in zip(views[:6], views[6:], strict=True):
        assert torch.equal(mirrored, plain.flip(-1))


def test_an_embedding_with_tta_is_the_mean_of_the_views_codes():
    torch.manual_seed(0)
    model = build_model("conv", widths=[4, 8], pool_latent=True)
    images, _ = two_kinds(6)
    tta = {"flip": True, "crops": 2, "scale": 0.8}
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    model.eval()
    with torch.inference_mode():
        expected = torch.stack([model.encode(v) for v in tta_views(x, tta)]).mean(0)
    assert np.allclose(embed(model, images, tta=tta), expected.numpy(), atol=1e-5)
    assert not np.allclose(embed(model, images), expected.numpy(), atol=1e-5)


def test_the_fitted_estimator_clusters_the_averaged_codes():
    images, _ = two_kinds(64)
    plain = tiny().fit(images)
    averaged = tiny(settings=(*tiny().settings, "cluster.tta={flip=true,crops=5}")).fit(images)
    tta = averaged.recipe_["cluster"]["tta"]
    assert np.allclose(averaged.codes_, embed(averaged.model_, images, tta=tta))
    assert np.allclose(averaged.transform(images[:5]), averaged.codes_[:5])
    # training does not use it: the same weights, other codes
    for a, b in zip(plain.model_.state_dict().values(), averaged.model_.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)
    assert not np.allclose(plain.codes_, averaged.codes_)


@pytest.mark.parametrize("bad", ["cluster.tta.crops=6", "cluster.tta.scale=0.2",
                                 "cluster.tta.flip=1", "cluster.tta.views=2"])  # fmt: skip
def test_bad_tta_settings_are_refused(bad):
    with pytest.raises(InputError, match="tta"):
        apply_overrides(load_recipe("best"), [bad])
