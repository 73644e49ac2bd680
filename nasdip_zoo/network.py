"""Assembly: a genotype becomes the NAS-DIP encoder-decoder (NASDIP_FACTS section 1, paper Fig. 4-5).

Encoder levels halve the resolution; each decoder merge sums (or, for DIP's U-Net, concatenates)
the main path's upsampling cell, the same-level skip and every enabled cross-level connection.
Cross-level "up" paths are chains of 2x cells shared per level pair (paper Fig. 5); "down" paths
are chains of stride-2 conv blocks. Only modules that some connection uses are built.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from .cells import UpsamplingCellModule, make_activation
from .genotype import Backbone, Genotype
from .zoo import get_genotype

__all__ = ["NASDIPNet", "build_nasdip", "count_parameters", "pad_to_multiple"]

_PAD_MODES = {"reflection": "reflect", "zero": "zeros", "replicate": "replicate"}


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    return nn.Identity()


def _conv(bb: Backbone, cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, padding_mode=_PAD_MODES[bb.padding])


def _conv_block(bb: Backbone, cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
    return [_conv(bb, cin, cout, k, stride), _norm(bb.norm, cout), make_activation(bb.activation)]


def pad_to_multiple(x: torch.Tensor, multiple: int, minimum: int = 1) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Reflection-pad H and W (centred) up to a multiple of ``multiple`` and at least ``minimum``.

    Reflection is repeated where the pad exceeds the image, so tiny inputs work too. Returns the
    padded tensor and (top, bottom, left, right) for :func:`crop_padding`.
    """
    h, w = x.shape[-2:]
    th = max(-(-h // multiple) * multiple, minimum)
    tw = max(-(-w // multiple) * multiple, minimum)
    top, left = (th - h) // 2, (tw - w) // 2
    bottom, right = th - h - top, tw - w - left
    pads = (top, bottom, left, right)
    while top or bottom or left or right:
        ch, cw = x.shape[-2:]
        # reflection needs pad < size; size-1 pixels never reflect a 1-pixel image, so replicate it
        mode = "reflect" if min(ch, cw) > 1 else "replicate"
        lim_h, lim_w = (ch - 1, cw - 1) if mode == "reflect" else (top + bottom, left + right)
        t, b = min(top, lim_h), min(bottom, lim_h)
        l, r = min(left, lim_w), min(right, lim_w)
        x = F.pad(x, (l, r, t, b), mode=mode)
        top, bottom, left, right = top - t, bottom - b, left - l, right - r
    return x, pads


def crop_padding(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    top, bottom, left, right = pads
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]


class NASDIPNet(nn.Module):
    """The network of one genotype. Input N x in_channels x H x W (any H, W); output the same H x W."""

    def __init__(self, genotype: Genotype, in_channels: int = 32, out_channels: int = 3) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}={v!r} is not allowed; it must be a positive integer")
        self.genotype = genotype
        self.in_channels, self.out_channels = in_channels, out_channels
        bb, cell = genotype.backbone, genotype.cell
        d, c = bb.depth, bb.channels
        self.matrix = genotype.matrix
        widths = [in_channels] + [c] * d  # widths of the sources f0 = z, f1 .. fd

        # encoder level k: f_{k-1} -> f_k at half the resolution
        self.encoder = nn.ModuleList(
            nn.Sequential(*_conv_block(bb, widths[k], c, 3, stride=2), *_conv_block(bb, c, c, 3)) for k in range(d)
        )
        # same-level skips into merge r (the matrix diagonal)
        self.skips = nn.ModuleDict(
            {
                str(r): nn.Sequential(*_conv_block(bb, widths[r], bb.skip_channels, 1))
                for r in range(d)
                if self.matrix[r][r] and bb.skip_channels
            }
        )
        # the main path: one upsampling cell into each merge
        self.cells = nn.ModuleList(UpsamplingCellModule(cell, c, c) for _ in range(d))
        # cross-level steps: up_k maps level k -> k-1 (a shared 2x cell), down_k maps level k -> k+1
        ups, downs = set(), set()
        for r in range(d):
            for src in range(d):
                if self.matrix[r][src] and src > r:
                    ups.update(range(r + 1, src + 1))
                elif self.matrix[r][src] and src < r:
                    downs.update(range(src, r))
        self.cross_up = nn.ModuleDict({str(k): UpsamplingCellModule(cell, c, c) for k in sorted(ups)})
        self.cross_down = nn.ModuleDict(
            {str(k): nn.Sequential(*_conv_block(bb, widths[k], c, 3, stride=2)) for k in sorted(downs)}
        )
        # decoder block after merge r
        dec_in = c + bb.skip_channels if bb.merge == "concat" and len(self.skips) else c
        self.decoder = nn.ModuleList()
        for r in range(d):
            cin = dec_in if str(r) in self.skips else c
            layers: list[nn.Module] = [_norm(bb.norm, cin)]
            for i in range(bb.decoder_convs):
                layers += _conv_block(bb, cin if i == 0 else c, c, 3)
            layers += _conv_block(bb, cin if bb.decoder_convs == 0 else c, c, 1)
            self.decoder.append(nn.Sequential(*layers))
        head: list[nn.Module] = [nn.Conv2d(c, out_channels, 1)]
        if bb.output_activation == "sigmoid":
            head.append(nn.Sigmoid())
        elif bb.output_activation == "tanh":
            head.append(nn.Tanh())
        self.head = nn.Sequential(*head)

    @property
    def size_multiple(self) -> int:
        """Inputs are padded internally to a multiple of this (2**depth)."""
        return 2 ** self.genotype.backbone.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"NASDIPNet expects input N x {self.in_channels} x H x W, got shape {tuple(x.shape)}"
            )
        d = self.genotype.backbone.depth
        x, pads = pad_to_multiple(x, self.size_multiple, minimum=2 * self.size_multiple)
        feats = [x]
        for enc in self.encoder:
            feats.append(enc(feats[-1]))

        moved: dict[tuple[int, int], torch.Tensor] = {}  # (source, level) -> source brought to level

        def bring(src: int, level: int) -> torch.Tensor:
            if src == level:
                return feats[src]
            if (src, level) not in moved:
                if src > level:  # coarser source: one shared 2x cell per level pair
                    moved[(src, level)] = self.cross_up[str(level + 1)](bring(src, level + 1))
                else:  # finer source: one stride-2 block per level pair
                    moved[(src, level)] = self.cross_down[str(level - 1)](bring(src, level - 1))
            return moved[(src, level)]

        h = feats[d]
        for r in reversed(range(d)):
            main = self.cells[r](h)
            if self.genotype.backbone.merge == "concat":
                merged = torch.cat([self.skips[str(r)](feats[r]), main], 1) if str(r) in self.skips else main
            else:
                merged = main
                if str(r) in self.skips:
                    merged = merged + self.skips[str(r)](feats[r])
                for src in range(d):
                    if src != r and self.matrix[r][src]:
                        merged = merged + bring(src, r)
            h = self.decoder[r](merged)
        return crop_padding(self.head(h), pads)

    def extra_repr(self) -> str:
        return f"genotype={self.genotype.describe()!r}, in_channels={self.in_channels}, out_channels={self.out_channels}"


def build_nasdip(
    genotype: Genotype | str | os.PathLike[str], in_channels: int = 32, out_channels: int = 3
) -> NASDIPNet:
    """Build the network of any point of the search space (a Genotype, a zoo name or a JSON path)."""
    if not isinstance(genotype, Genotype):
        genotype = get_genotype(genotype)
    return NASDIPNet(genotype, in_channels=in_channels, out_channels=out_channels)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; shared modules count once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


