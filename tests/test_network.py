"""build_nasdip: parameter counts of the released networks, every cell, every pattern, any size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nasdip_zoo
from nasdip_zoo import Backbone, Connections, Genotype, SearchSpace, UpsamplingCell, build_nasdip, count_parameters
from nasdip_zoo.cells import UpsamplingCellModule, upsampling_cell
from nasdip_zoo.network import pad_to_multiple

# NASDIP_FACTS section 4: the released modules (denoising without its 4 unused down blocks)
RELEASED_PARAMS = [
    ("nasdip-sr", 3, 3_512_835),
    ("nasdip-denoise", 3, 3_924_867),
    ("nasdip-inpaint", 1, 10_710_273),
    ("dip-skip", 3, 2_217_831),
]


@pytest.mark.parametrize("name,out_channels,expected", RELEASED_PARAMS)
def test_parameter_counts_equal_the_released_networks(name, out_channels, expected):
    assert count_parameters(build_nasdip(name, in_channels=32, out_channels=out_channels)) == expected


def test_unused_modules_are_not_built_and_up_cells_are_shared():
    den = build_nasdip("nasdip-denoise")
    assert len(den.cross_down) == 0 and sorted(den.cross_up) == ["1", "2", "3", "4"]
    calls = {k: 0 for k in den.cross_up}
    for k, m in den.cross_up.items():
        m.register_forward_hook(lambda *_, k=k: calls.__setitem__(k, calls[k] + 1))
    den(torch.rand(1, 32, 64, 64))
    # chains of 2x cells reuse one module per level pair: level 4->3 serves enc4 -> merges 3, 2, 1, 0
    assert calls == {"4": 1, "3": 2, "2": 3, "1": 4}
    assert len(build_nasdip("dip-skip").cross_up) == 0


def test_no_global_torch_patching():
    assert not hasattr(nn.Module, "add")
    assert nasdip_zoo.build_nasdip is build_nasdip


SMALL = Backbone(depth=3, channels=16, skip_channels=16)


def _finite_forward_backward(module, x):
    x = x.clone().requires_grad_(True)
    y = module(x)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    grads = [x.grad] + [p.grad for p in module.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    return y


def test_every_cell_of_the_search_space_builds_and_runs():
    space = SearchSpace(backbone=SMALL)
    torch.manual_seed(0)
    x = torch.randn(2, 16, 6, 6)
    n = 0
    for tokens in space._valid_cell_tokens:
        cell = space.decode(list(tokens) + [0] * 5).cell
        m = UpsamplingCellModule(cell, 16, 16)
        y = _finite_forward_backward(m, x)
        assert y.shape == (2, 16, 12, 12), cell
        n += 1
    assert n == space.cell_space_size() == 6960


def test_cells_change_width_when_asked():
    for cell in (
        UpsamplingCell(transform="conv"),
        UpsamplingCell(upsample="pixel_shuffle", transform="depthwise_conv", kernel_size=5),
        UpsamplingCell(upsample="pixel_shuffle", transform="channel_sum", transform_first=True),
        UpsamplingCell(upsample="transposed_conv", transform="separable_conv", transform_first=True),
    ):
        assert upsampling_cell(cell, 32, 8)(torch.rand(1, 32, 5, 7)).shape == (1, 8, 10, 14)
    assert upsampling_cell("nasdip-sr", 12)(torch.rand(1, 12, 4, 4)).shape == (1, 12, 8, 8)
    with pytest.raises(ValueError, match="identity"):
        upsampling_cell(UpsamplingCell(), 8, 4)


@pytest.mark.parametrize("depth", [3, 4, 5])
def test_every_shared_connection_pattern_builds_and_runs(depth):
    bb = Backbone(depth=depth, channels=4, skip_channels=4)
    cell = UpsamplingCell(upsample="nearest", transform="conv", kernel_size=1)
    offsets = list(range(-(depth - 1), depth))
    torch.manual_seed(0)
    x = torch.rand(1, 3, 2 ** (depth + 1), 2 ** (depth + 1))
    for mask in range(2 ** len(offsets)):
        chosen = tuple(o for i, o in enumerate(offsets) if mask >> i & 1)
        net = build_nasdip(Genotype(cell=cell, connections=Connections(offsets=chosen), backbone=bb), 3, 2)
        y = net(x)
        assert y.shape == (1, 2, *x.shape[-2:]) and torch.isfinite(y).all()


@pytest.mark.parametrize("size", [(37, 53), (16, 16), (5, 3), (1, 1)])
def test_odd_sizes_in_same_size_out(size):
    net = build_nasdip(Genotype.from_model_index(158).replace(channels=8, skip_channels=8), 4, 3)
    y = net(torch.rand(2, 4, *size))
    assert y.shape == (2, 3, *size)
    assert ((y > 0) & (y < 1)).all()  # sigmoid head


def test_large_odd_size_and_batch():
    g = get_small("nasdip-inpaint")
    y = build_nasdip(g, 32, 1)(torch.rand(1, 32, 514, 514))
    assert y.shape == (1, 1, 514, 514)


def get_small(name):
    return nasdip_zoo.get_genotype(name).replace(channels=4, skip_channels=4)


def test_full_released_network_on_odd_size():
    net = build_nasdip("nasdip-sr")
    x = torch.rand(3, 32, 37, 53)
    y = net(x)
    assert y.shape == (3, 3, 37, 53)
    # samples of a batch do not mix beyond batch-norm statistics: eval mode makes them independent
    net.eval()
    assert torch.allclose(net(x)[1:2], net(x[1:2]), atol=1e-5)


def test_pad_to_multiple_reflects_and_crops_back():
    x = torch.arange(15.0).reshape(1, 1, 3, 5)
    y, pads = pad_to_multiple(x, 8, minimum=16)
    assert y.shape[-2:] == (16, 16)
    t, b, l, r = pads
    assert torch.equal(y[..., t : 16 - b, l : 16 - r], x)
    assert torch.equal(y[..., t - 1, l : 16 - r], x[..., 1, :])  # reflection, not zeros


def test_wrong_input_channels_is_a_clear_error():
    with pytest.raises(ValueError, match="expects input N x 32"):
        build_nasdip("dip-skip")(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="out_channels=0"):
        build_nasdip("dip-skip", out_channels=0)
    with pytest.raises(ValueError, match="unknown genotype 'nasdip-dehaze'"):
        build_nasdip("nasdip-dehaze")
