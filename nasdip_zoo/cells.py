"""The upsampling-cell search space as torch modules (paper Sec. 3.2, Fig. 3).

A cell is a 2x spatial upsample op followed (or, with ``transform_first``, preceded) by a
feature transformation, each optionally followed by an activation. Convolutions inside a cell
use zero padding and no bias, as released; transposed convolutions keep their bias.
"""

from __future__ import annotations

from math import gcd

import torch
import torch.nn.functional as F
from torch import nn

from .genotype import Genotype, UpsamplingCell
from .zoo import get_genotype

__all__ = ["upsampling_cell", "UpsamplingCellModule", "ChannelSum", "make_activation"]


def make_activation(name: str) -> nn.Module:
    """The activation of a cell or of the backbone by name ('none' is the identity)."""
    if name == "none":
        return nn.Identity()
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    if name == "selu":
        return nn.SELU()
    if name == "prelu":
        return nn.PReLU()
    raise ValueError(f"activation={name!r} is not allowed; choose none, relu, leaky_relu, selu or prelu")


class Interpolate(nn.Module):
    """Parameter-free 2x upsampling (bilinear, bicubic or nearest; align_corners=False)."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "nearest":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return F.interpolate(x, scale_factor=2, mode=self.mode, align_corners=False)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class ChannelSum(nn.Module):
    """'Add every N consecutive channels': sum the N equal channel chunks, then a k x k conv.

    Output channel c before the conv is x[c] + x[c + C/N] + ... (the released chunking).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, chunks: int) -> None:
        super().__init__()
        if in_channels % chunks:
            raise ValueError(
                f"channel_sum: {in_channels} channels are not divisible by sum_chunks={chunks}; "
                f"use a width that is a multiple of {chunks}"
            )
        self.chunks = chunks
        self.conv = _cell_conv(in_channels // chunks, out_channels, kernel_size, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            # sum on the NHWC view: no copy into NCHW, and the result (and its gradient) stay channels-last
            summed = x.permute(0, 2, 3, 1).unflatten(3, (self.chunks, c // self.chunks)).sum(dim=3).permute(0, 3, 1, 2)
        else:
            summed = x.reshape(n, self.chunks, c // self.chunks, h, w).sum(dim=1)
        return self.conv(summed)


def _cell_conv(cin: int, cout: int, k: int, d: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=d * (k - 1) // 2, dilation=d, groups=groups, bias=False)


def _transform(cell: UpsamplingCell, cin: int, cout: int) -> nn.Module:
    k, d = cell.kernel_size, cell.dilation
    if cell.transform == "identity":
        return nn.Identity()
    if cell.transform == "conv":
        return _cell_conv(cin, cout, k, d)
    if cell.transform == "transposed_conv":
        return nn.ConvTranspose2d(cin, cout, k, stride=1, padding=d * (k - 1) // 2, dilation=d)
    if cell.transform == "channel_sum":
        return ChannelSum(cin, cout, k, d, cell.sum_chunks)
    if cell.transform == "separable_conv":
        return nn.Sequential(_cell_conv(cin, cin, k, d, groups=cin), _cell_conv(cin, cout, 1, 1))
    if cell.transform == "depthwise_conv":
        # one filter bank per input channel; with cin != cout this is a depthwise conv with a
        # channel multiplier (the released code only ever used cin == cout, groups == channels)
        return _cell_conv(cin, cout, k, d, groups=gcd(cin, cout))
    raise ValueError(f"cell.transform={cell.transform!r} is not allowed")


def _upsample(cell: UpsamplingCell, cin: int, cout: int) -> nn.Module:
    if cell.upsample in ("bilinear", "bicubic", "nearest"):
        return Interpolate(cell.upsample)
    if cell.upsample == "pixel_shuffle":
        return nn.PixelShuffle(2)
    if cell.upsample == "transposed_conv":
        k, d = cell.kernel_size, cell.dilation
        return nn.ConvTranspose2d(cin, cout, k, stride=2, padding=d * (k - 1) // 2, output_padding=1, dilation=d)
    raise ValueError(f"cell.upsample={cell.upsample!r} is not allowed")


class UpsamplingCellModule(nn.Sequential):
    """One searched 2x upsampling cell, ``in_channels`` -> ``out_channels``."""

    def __init__(self, cell: UpsamplingCell, in_channels: int, out_channels: int) -> None:
        t_in, t_out = cell.channel_plan(in_channels, out_channels)
        up_in, up_out = (t_out, out_channels) if cell.transform_first else (in_channels, t_in)
        up = [_upsample(cell, up_in, up_out)]
        if cell.activation_after_upsample:
            up.append(make_activation(cell.activation))
        tr = [_transform(cell, t_in, t_out)]
        if cell.transform != "identity":
            tr.append(make_activation(cell.activation))
        layers = tr + up if cell.transform_first else up + tr
        super().__init__(*[m for m in layers if not isinstance(m, nn.Identity)])
        self.cell = cell
        self.in_channels, self.out_channels = in_channels, out_channels


def upsampling_cell(
    genotype: Genotype | UpsamplingCell | str, in_channels: int, out_channels: int | None = None
) -> nn.Module:
    """A searched 2x upsampling layer to drop into any network (``genotype`` may be a zoo name)."""
    if isinstance(genotype, str):
        genotype = get_genotype(genotype)
    cell = genotype.cell if isinstance(genotype, Genotype) else genotype
    if not isinstance(cell, UpsamplingCell):
        raise ValueError(f"upsampling_cell() needs a Genotype, an UpsamplingCell or a zoo name, got {genotype!r}")
    return UpsamplingCellModule(cell, in_channels, in_channels if out_channels is None else out_channels)
