"""NAS-DIP as a CycleGAN generator (paper Sec. 4.5) with pytorch-CycleGAN-and-pix2pix's contract.

That project builds generators as ``Generator(input_nc, output_nc, ngf, norm_layer=..., use_dropout=...)``
inside ``networks.define_G`` and then re-initialises every Conv/BatchNorm weight (``init_weights``).
:class:`NASDIPGenerator` takes the same arguments plus a genotype: the image itself is the input
(``input_nc`` channels in [-1, 1]), the output has a tanh head ([-1, 1]) and the input's size for any
H x W, ``ngf`` is the backbone width, and ``norm_layer`` is called the way that project passes it.
:func:`define_G` is a drop-in for its factory.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import init

from ..genotype import Genotype
from ..network import NASDIPNet
from ._common import resolve_genotype

__all__ = ["NASDIPGenerator", "define_G", "init_weights", "norm_kind", "INIT_TYPES"]

INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")
_NORM_MODULES = (nn.BatchNorm2d, nn.InstanceNorm2d)


def norm_kind(norm_layer: Callable[[int], nn.Module] | str | None) -> str:
    """Map a CycleGAN ``norm_layer`` (class, functools.partial, None or a factory of an identity) to
    ``Backbone.norm``: 'batch', 'instance' or 'none'. A string is taken as the norm's name."""
    if norm_layer is None:
        return "none"
    if isinstance(norm_layer, str):
        if norm_layer not in ("batch", "instance", "none"):
            raise ValueError(f"norm={norm_layer!r} is not allowed; choose 'batch', 'instance' or 'none'")
        return norm_layer
    if not callable(norm_layer):
        raise ValueError(f"norm_layer={norm_layer!r} must be a callable norm_layer(num_features), a name or None")
    try:
        probe = norm_layer(4)
    except Exception as e:  # noqa: BLE001 - any failure means it is not a norm_layer(num_features)
        raise ValueError(f"norm_layer={norm_layer!r} cannot be called as norm_layer(4): {e}") from e
    if isinstance(probe, (nn.BatchNorm2d, nn.SyncBatchNorm)):
        return "batch"
    if isinstance(probe, nn.InstanceNorm2d):
        return "instance"
    if isinstance(probe, nn.Module) and not list(probe.parameters()):
        x = torch.randn(1, 4, 3, 3)
        try:
            same = torch.equal(probe(x), x)
        except Exception:  # noqa: BLE001
            same = False
        if same:
            return "none"
    raise ValueError(
        f"norm_layer={norm_layer!r} builds {type(probe).__name__}; NASDIPGenerator supports BatchNorm2d, "
        "InstanceNorm2d or no norm (None / an identity), as CycleGAN's get_norm_layer gives them"
    )


def _swap_norms(module: nn.Module, norm_layer: Callable[[int], nn.Module]) -> None:
    """Rebuild every norm module with the caller's own ``norm_layer`` (keeps affine / running-stats flags)."""
    for name, child in module.named_children():
        if isinstance(child, _NORM_MODULES):
            setattr(module, name, norm_layer(child.num_features))
        else:
            _swap_norms(child, norm_layer)


class NASDIPGenerator(NASDIPNet):
    """A NAS-DIP encoder-decoder that maps an image in [-1, 1] to an image in [-1, 1] (CycleGAN's G).

    ``ngf`` is the backbone width (every level; concat skips keep the genotype's width, e.g. DIP's 4).
    ``use_dropout`` adds Dropout(0.5) after each decoder block below full resolution, as CycleGAN's
    generators put dropout in their inner blocks.

    Prefer a norm (CycleGAN's default is instance norm). Without one, CycleGAN's N(0, 0.02) init leaves
    the untrained output near 0 (it learns slowly), and its Kaiming init saturates the tanh head of
    ``nasdip-denoise`` (channel-sum cells and summed cross-level merges grow the activations level by
    level: pre-tanh std 9 at ngf 8, 178 at ngf 64), where nothing learns.
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        norm_layer: Callable[[int], nn.Module] | str | None = nn.BatchNorm2d,
        use_dropout: bool = False,
        genotype: Genotype | str | os.PathLike[str] = "nasdip-denoise",
    ) -> None:
        kind = norm_kind(norm_layer)
        g = resolve_genotype(genotype, channels=ngf).replace(norm=kind, output_activation="tanh")
        super().__init__(g, in_channels=input_nc, out_channels=output_nc)
        if kind != "none" and callable(norm_layer):
            _swap_norms(self, norm_layer)
        if use_dropout:
            for block in list(self.decoder)[1:]:
                block.append(nn.Dropout(0.5))
        self.input_nc, self.output_nc, self.ngf = input_nc, output_nc, ngf
        self.use_dropout = bool(use_dropout)


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """CycleGAN's initialisation rule: Conv*/Linear weights by ``init_type`` (bias 0), BatchNorm2d
    weights ~ N(1, gain) (bias 0). Works on any module; returns it."""
    if init_type not in INIT_TYPES:
        raise ValueError(f"init_type={init_type!r} is not allowed; choose one of {list(INIT_TYPES)}")
    draw = {
        "normal": lambda w: init.normal_(w, 0.0, init_gain),
        "xavier": lambda w: init.xavier_normal_(w, gain=init_gain),
        "kaiming": lambda w: init.kaiming_normal_(w, a=0, mode="fan_in"),
        "orthogonal": lambda w: init.orthogonal_(w, gain=init_gain),
    }[init_type]

    def visit(m: nn.Module) -> None:
        kind = type(m).__name__
        weight = getattr(m, "weight", None)
        if weight is not None and ("Conv" in kind or "Linear" in kind):
            draw(weight.data)
            if getattr(m, "bias", None) is not None:
                init.constant_(m.bias.data, 0.0)
        elif "BatchNorm2d" in kind and weight is not None:
            init.normal_(weight.data, 1.0, init_gain)
            init.constant_(m.bias.data, 0.0)

    net.apply(visit)
    return net


def _cyclegan_norm_layer(norm: str) -> Callable[[int], nn.Module] | None:
    """The norm_layer that CycleGAN's ``get_norm_layer(norm)`` returns (current upstream flags)."""
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "none":
        return None
    raise ValueError(f"norm={norm!r} is not allowed; choose 'batch', 'instance' or 'none'")


def define_G(
    input_nc: int,
    output_nc: int,
    ngf: int,
    netG: str = "nasdip",
    norm: str = "batch",
    use_dropout: bool = False,
    init_type: str = "normal",
    init_gain: float = 0.02,
    gpu_ids: Sequence[int] = (),
    genotype: Genotype | str | os.PathLike[str] = "nasdip-denoise",
) -> nn.Module:
    """Drop-in for CycleGAN's ``networks.define_G``: build, move to ``gpu_ids`` (DataParallel) and init.

    ``netG`` is 'nasdip' (use ``genotype``) or a zoo name such as 'nasdip-sr' or 'dip-skip'.
    """
    if not isinstance(netG, str):
        raise ValueError(f"netG={netG!r} must be a string: 'nasdip' or a zoo genotype name")
    if netG != "nasdip":
        from ..zoo import list_genotypes

        if netG not in list_genotypes():
            raise ValueError(
                f"netG={netG!r} is not a NAS-DIP generator; use 'nasdip' (with genotype=...) or one of "
                f"{list_genotypes()} (CycleGAN's own resnet_*/unet_* stay in its define_G)"
            )
        genotype = netG
    net: nn.Module = NASDIPGenerator(
        input_nc, output_nc, ngf, norm_layer=_cyclegan_norm_layer(norm), use_dropout=use_dropout, genotype=genotype
    )
    gpu_ids = list(gpu_ids)
    if gpu_ids:
        if not torch.cuda.is_available():
            raise ValueError(f"gpu_ids={gpu_ids} were given but CUDA is not available; pass gpu_ids=[] for the CPU")
        net.to(gpu_ids[0])
        net = nn.DataParallel(net, gpu_ids)
    return init_weights(net, init_type, init_gain)


