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
