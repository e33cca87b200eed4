import pytest
import torch

from aecluster.augment import ColorJitter, RandomResizedCrop, build_augment, rotate90
from aecluster.losses import ProjectionHead, RotationHead, nt_xent


def test_nt_xent_prefers_matching_pairs():
    z = torch.randn(16, 8)
    matched = nt_xent(z, z + 0.01 * torch.randn(16, 8))
    shuffled = nt_xent(z, z[torch.randperm(16)])
    assert matched < shuffled
    assert torch.isfinite(matched)


def test_heads_shapes_and_gradients():
    z = torch.randn(6, 10, requires_grad=True)
    assert RotationHead(10)(z).shape == (6, 4)
    p = ProjectionHead(10, 32, 5)(z)
    assert p.shape == (6, 5)
    p.sum().backward()
    assert z.grad is not None


def test_rotate90_rotates_each_image_by_its_own_k():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    k = torch.tensor([1, 3])
    out = rotate90(x, k)
    assert torch.equal(out[0], torch.rot90(x[0], 1, dims=(1, 2)))
    assert torch.equal(out[1], torch.rot90(x[1], 3, dims=(1, 2)))


def test_augmentations_are_deterministic_given_the_generator_and_stay_in_range():
    aug = build_augment({"crop": {"scale": [0.2, 1.0]}, "color": {}, "grayscale": {}, "noise": {}})
    x = torch.rand(8, 3, 32, 32) * 2 - 1
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    c = aug(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= -1 and a.max() <= 1


def test_full_crop_without_flip_is_identity_and_jitter_can_be_off():
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    g = torch.Generator().manual_seed(0)
    same = RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0)(x, g)
    assert torch.allclose(same, x, atol=1e-5)
    assert torch.equal(ColorJitter(p=0.0)(x, g), x)


def test_nt_xent_of_two_views_is_simclrs_loss():
    z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T / 0.5).fill_diagonal_(float("-inf"))
    simclr = torch.nn.functional.cross_entropy(sim, torch.cat([torch.arange(16, 32),
                                                               torch.arange(16)]))  # fmt: skip
    assert nt_xent(z1, z2, temperature=0.5).item() == pytest.approx(simclr.item(), rel=1e-6)


def test_nt_xent_of_many_views_counts_every_other_view_of_an_image_as_positive():
    anchor = torch.randn(16, 8)
    near = [anchor + 0.01 * torch.randn(16, 8) for _ in range(3)]
    one_stranger = [*near[:2], near[2][torch.randperm(16)]]
    assert nt_xent(anchor, *near) < nt_xent(anchor, *one_stranger)


def test_nt_xent_of_three_views_by_hand():
    views = [torch.randn(4, 3) for _ in range(3)]
    z = torch.nn.functional.normalize(torch.cat(views), dim=1)
    terms = []
    for a in range(12):
        others = [b for b in range(12) if b != a]
        log_norm = torch.logsumexp(torch.stack([z[a] @ z[b] / 0.5 for b in others]), 0)
        terms += [log_norm - z[a] @ z[b] / 0.5 for b in others if b % 4 == a % 4]
    assert len(terms) == 24
    by_hand = torch.stack(terms).mean()
    assert nt_xent(*views, temperature=0.5).item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_crop_resizes_to_its_size():
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    small = RandomResizedCrop(scale=(0.1, 0.4), size=16)(x, torch.Generator().manual_seed(0))
    assert small.shape == (5, 3, 16, 16) and small.min() >= -1 and small.max() <= 1
