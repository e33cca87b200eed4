import pytest
import torch
from torch import nn

from aecluster.errors import InputError
from aecluster.models import MODELS, build_model, count_parameters


def test_baseline_is_the_course_architecture():
    m = build_model("baseline")
    convs = [
        (type(c).__name__, c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding)
        for c in m.modules()
        if isinstance(c, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    assert convs == [
        ("Conv2d", 3, 64, (3, 3), (1, 1), (1, 1)),
        ("Conv2d", 64, 128, (3, 3), (1, 1), (1, 1)),
        ("Conv2d", 128, 256, (3, 3), (1, 1), (1, 1)),
        ("ConvTranspose2d", 256, 128, (5, 5), (1, 1), (0, 0)),
        ("ConvTranspose2d", 128, 64, (9, 9), (1, 1), (0, 0)),
        ("ConvTranspose2d", 64, 3, (17, 17), (1, 1), (0, 0)),
    ]
    assert sum(isinstance(layer, nn.MaxPool2d) for layer in m.modules()) == 3
    assert isinstance(m.decoder[-1], nn.Tanh)
    out = m(torch.zeros(2, 3, 32, 32))
    assert out.recon.shape == (2, 3, 32, 32) and out.latent.shape == (2, 4096)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"residual": True, "downsample": "stride", "upsample": "pixelshuffle"},
        {"residual": True, "decoder_residual": False, "downsample": "stride"},
        {"widths": [8, 16, 32], "bottleneck": 16},
        {"widths": [8, 16], "bottleneck": 4, "variational": True},
        {"widths": [8, 16, 32], "pool_latent": True, "batchnorm": False},
    ],
)
def test_conv_options_shapes(params):
    m = build_model("conv", **params)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    out = m(x)
    assert out.recon.shape == x.shape
    assert out.latent.shape == (4, m.latent_dim)
    assert m.eval().encode(x).shape == (4, m.latent_dim)
    assert (out.kl is not None) == bool(params.get("variational"))
    assert out.recon.abs().max() <= 1


def test_registry_and_clear_errors():
    assert {"baseline", "conv"} <= set(MODELS)
    with pytest.raises(InputError, match="unknown model"):
        build_model("nope")
    with pytest.raises(InputError, match="unknown key .depth."):
        build_model("conv", depth=3)
    with pytest.raises(InputError, match="bottleneck"):
        build_model("conv", variational=True)
    assert count_parameters(build_model("baseline")) == 1_909_251


def test_decoder_residual_switches_off_only_the_decoder_blocks():
    def blocks(part):
        return sum(type(m).__name__ == "ResBlock" for m in part.modules())

    both = build_model("conv", widths=[8, 16, 32], residual=True, downsample="stride")
    encoder_only = build_model(
        "conv", widths=[8, 16, 32], residual=True, decoder_residual=False, downsample="stride"
    )
    assert blocks(both.encoder) == blocks(encoder_only.encoder) == 2
    assert blocks(both.decoder) == 2 and blocks(encoder_only.decoder) == 0
