"""Forward operators ``A`` for learning-free restoration, and seeded degradation helpers for benchmarks.

Every operator is an ``nn.Module`` with one interface:

* ``op(x)`` maps an image ``x`` (``NxCxHxW``, the size of the image being restored) to what the
  camera would observe;
* ``op.output_size(observed_hw)`` gives the size of the image to restore from an observation;
* ``op.prepare(y)`` gives what ``op(x)`` is compared with (``y`` itself, or ``y * mask`` for
  inpainting), so the restorer's loss is always ``mse(op(x), op.prepare(y))``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from .imageio import ImageLike, from_tensor, split_alpha, merge_alpha, to_tensor

__all__ = [
    "Operator",
    "Denoising",
    "SuperResolution",
    "Inpainting",
    "CallableOperator",
    "as_operator",
    "lanczos2_kernel",
    "add_gaussian_noise",
    "crop_to_multiple",
    "lanczos_lr",
    "bernoulli_mask",
    "heide_mask",
    "SR_FACTORS",
]

SR_FACTORS = (2, 4, 8)


class Operator(nn.Module):
    """Base class of the forward operators: identity-sized by default, observation used as is."""

    def output_size(self, observed_hw: tuple[int, int]) -> tuple[int, int]:
        """Size (H, W) of the image to restore from an observation of size ``observed_hw``."""
        return (int(observed_hw[0]), int(observed_hw[1]))

    def prepare(self, y: torch.Tensor) -> torch.Tensor:
        """What ``self(x)`` is compared with in the loss (default: the observation itself)."""
        return y


class Denoising(Operator):
    """Identity operator: the observation is the noisy image itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def lanczos2_kernel(factor: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """DIP's ``lanczos2`` downsampling kernel (support 2, phase 0.5): a ``4f x 4f`` separable kernel summing to 1."""
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    size = 4 * factor
    center = (size + 2) / 2.0  # DIP: kernel_width = 4f + 1, center = (width + 1) / 2
    i = torch.arange(1, size + 1, dtype=torch.float64)
    d = (i + 0.5 - center).abs() / factor
    support = 2.0
    safe = torch.where(d == 0, torch.ones_like(d), d)
    k = support * torch.sin(math.pi * safe) * torch.sin(math.pi * safe / support) / (math.pi**2 * safe**2)
    k = torch.where(d == 0, torch.ones_like(k), k)
    k2 = torch.outer(k, k)
    return (k2 / k2.sum()).to(dtype)


class SuperResolution(Operator):
    """DIP's SR model: lanczos2 blur + stride-``factor`` subsampling with replication padding (preserve_size)."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        if factor not in SR_FACTORS:
            raise ValueError(f"super-resolution scale must be one of {SR_FACTORS}, got {factor!r}")
        self.factor = int(factor)
        self.pad = (4 * factor - factor) // 2
        self.register_buffer("kernel", lanczos2_kernel(factor, torch.float32)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        w = self.kernel.to(x.dtype).expand(c, 1, -1, -1)
        x = F.pad(x, (self.pad,) * 4, mode="replicate")
        return F.conv2d(x, w, stride=self.factor, groups=c)

    def output_size(self, observed_hw: tuple[int, int]) -> tuple[int, int]:
        return (int(observed_hw[0]) * self.factor, int(observed_hw[1]) * self.factor)


def _mask_tensor(mask: ImageLike) -> torch.Tensor:
    if isinstance(mask, torch.Tensor) and mask.ndim == 2:
        mask = mask[None]
    t, _ = to_tensor(mask, check_range=False)
    t = split_alpha(t)[0]
    return (t >= 0.5).to(torch.float32)


class Inpainting(Operator):
    """Pixel mask: ``A(x) = x * mask`` with 1 = known pixel, 0 = hole (broadcast over channels)."""

    def __init__(self, mask: ImageLike) -> None:
        super().__init__()
        m = _mask_tensor(mask)
        if m.sum() == 0:
            raise ValueError("the inpainting mask has no known pixel (1 = known, 0 = hole)")
        self.register_buffer("mask", m, persistent=False)

    def _fit(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != self.mask.shape[-2:]:
            raise ValueError(
                f"mask size {tuple(self.mask.shape[-2:])} does not match the image size {tuple(x.shape[-2:])}"
            )
        if self.mask.shape[1] not in (1, x.shape[1]):
            raise ValueError(f"mask has {self.mask.shape[1]} channels but the image has {x.shape[1]}")
        return self.mask.to(x.device, x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._fit(x)

    def prepare(self, y: torch.Tensor) -> torch.Tensor:
        return y * self._fit(y)


class CallableOperator(Operator):
    """Wrap any user callable or module ``A(x)``, or an object with ``.A(x)`` (deepinv physics style).

    ``.A`` is preferred over ``__call__`` because a deepinv physics' call also adds noise.
    Give ``scale`` (or ``output_size``) when ``A`` changes the image size.
    """

    def __init__(
        self,
        fn: Any,
        *,
        scale: int | None = None,
        output_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        target = fn.A if hasattr(fn, "A") and callable(fn.A) else fn
        if not callable(target):
            raise ValueError(f"operator must be callable or have a callable .A, got {type(fn).__name__}")
        if isinstance(fn, nn.Module):
            self.module = fn  # registered, so .to(device) moves it too
        object.__setattr__(self, "_fn", target)  # not registered twice as a submodule
        self.scale = scale
        self._output_size = tuple(int(s) for s in output_size) if output_size is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(x)

    def output_size(self, observed_hw: tuple[int, int]) -> tuple[int, int]:
        if self._output_size is not None:
            return self._output_size  # type: ignore[return-value]
        s = self.scale or 1
        return (int(observed_hw[0]) * s, int(observed_hw[1]) * s)


def as_operator(
    operator: Any = None, *, scale: int | None = None, mask: ImageLike | None = None
) -> Operator:
    """Resolve ``None | "denoise" | "sr" | "inpaint" | Operator | callable | object with .A`` to an Operator."""
    if isinstance(operator, Operator):
        return operator
    if operator is None:
        operator = "inpaint" if mask is not None else ("sr" if scale not in (None, 1) else "denoise")
    if isinstance(operator, str):
        name = operator.lower()
        if name in ("denoise", "denoising"):
            return Denoising()
        if name in ("sr", "super-resolution", "superresolution"):
            if scale is None:
                raise ValueError("super-resolution needs scale= (2, 4 or 8)")
            return SuperResolution(scale)
        if name in ("inpaint", "inpainting"):
            if mask is None:
                raise ValueError("inpainting needs mask= (1 = known pixel, 0 = hole)")
            return Inpainting(mask)
        raise ValueError(f"unknown operator {operator!r}: use 'denoise', 'sr', 'inpaint' or a callable")
    return CallableOperator(operator, scale=scale)


# ----------------------------------------------------------------------------------------------
# Seeded degradations (benchmark protocols of DIP, see NASDIP_FACTS.md section 6)


def add_gaussian_noise(img: ImageLike, sigma: float, seed: int = 0) -> ImageLike:
    """``img + N(0, sigma^2)`` clipped to [0, 1] (sigma on the [0, 1] scale: 25/255 for DIP's sigma 25).

    Seeded by its own generator (the global RNG is untouched); alpha is left unchanged; the result
    has the input's form (an 8-bit input gives an 8-bit, i.e. quantised, noisy image).
    """
    if not 0.0 <= sigma <= 1.0:
        raise ValueError(f"sigma is on the [0, 1] scale (25/255 for sigma 25), got {sigma}")
    t, form = to_tensor(img)
    colour, alpha = split_alpha(t)
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(colour.shape, generator=g, dtype=torch.float32).to(colour.dtype) * sigma
    noisy = (colour + noise.to(colour.device)).clamp(0.0, 1.0)
    return from_tensor(merge_alpha(noisy, alpha), form)


def crop_to_multiple(img: ImageLike, multiple: int = 32) -> ImageLike:
    """Centre-crop to height and width divisible by ``multiple`` (DIP's ``crop_image``), same form out."""
    t, form = to_tensor(img, check_range=False)
    h, w = t.shape[-2:]
    nh, nw = h - h % multiple, w - w % multiple
    if nh == 0 or nw == 0:
        raise ValueError(f"image of size {h}x{w} is smaller than the multiple {multiple}")
    top, left = (h - nh) // 2, (w - nw) // 2
    if isinstance(img, Image.Image):  # keep PIL pixel values exactly
        return img.crop((left, top, left + nw, top + nh))
    return from_tensor(t[..., top : top + nh, left : left + nw], form)


def lanczos_lr(img: ImageLike, factor: int, multiple: int = 32) -> ImageLike:
    """DIP's SR degradation: centre-crop to a multiple of ``multiple``, then PIL Lanczos resize to size // factor.

    8-bit images are resized by PIL as 8-bit images (as DIP does); float images channel by channel
    in PIL's float mode. The result has the input's form.
    """
    if factor not in SR_FACTORS:
        raise ValueError(f"super-resolution scale must be one of {SR_FACTORS}, got {factor!r}")
    hr = crop_to_multiple(img, multiple)
    t, form = to_tensor(hr)
    h, w = t.shape[-2:]
    size = (w // factor, h // factor)
    if isinstance(hr, Image.Image) and hr.mode in ("L", "LA", "RGB", "RGBA"):
        return hr.resize(size, Image.LANCZOS)
    if t.shape[0] != 1:
        raise ValueError("lanczos_lr takes one image, not a batch")
    chans = [
        np.asarray(Image.fromarray(t[0, c].cpu().numpy().astype(np.float32), mode="F").resize(size, Image.LANCZOS))
        for c in range(t.shape[1])
    ]
    lr = torch.from_numpy(np.stack(chans)).unsqueeze(0).clamp(0.0, 1.0)
    return from_tensor(lr, form)


def bernoulli_mask(shape: Sequence[int], keep: float, seed: int = 0) -> np.ndarray:
    """Random float32 mask of ``shape`` with each pixel kept (1) with probability ``keep``; own RNG, seeded."""
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must be a fraction in [0, 1], got {keep}")
    rng = np.random.default_rng(int(seed))
    return (rng.random(tuple(shape)) < keep).astype(np.float32)


def heide_mask(height: int, width: int) -> np.ndarray:
    """The reproducible 50% Heide-11 mask used by later work (float32 HxW, 1 = observed).

    Same numbers as ``np.random.seed(100); np.random.random_sample((1, H, W)) > 0.5`` but drawn
    from a private ``RandomState(100)`` so the global numpy RNG is untouched.
    """
    rs = np.random.RandomState(100)
    return (rs.random_sample((1, int(height), int(width)))[0] > 0.5).astype(np.float32)
