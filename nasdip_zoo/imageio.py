"""Image I/O and conversion between PIL / numpy / torch and the float NxCxHxW tensors the restorer uses.

Conventions
-----------
* Internally every image is a float tensor of shape ``N x C x H x W`` with values in ``[0, 1]``.
* numpy arrays are ``H x W`` (grayscale) or ``H x W x C``; torch tensors are ``C x H x W`` or
  ``N x C x H x W``. ``C`` is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGB + alpha).
* Integer images (uint8, uint16) are scaled by their maximum value; float images must already lie
  in ``[0, 1]``.
* **Alpha rule:** the alpha channel is never restored. :func:`split_alpha` separates it, the
  network restores the colour channels only, and the observation's alpha is passed through
  unchanged (resized to the output size when the output is larger, e.g. super-resolution).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ._files import atomic_write

ImageLike = Union[Image.Image, np.ndarray, torch.Tensor]

_PIL_MODE_BY_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_INT_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}

__all__ = [
    "ImageForm",
    "ImageLike",
    "load_image",
    "save_image",
    "to_tensor",
    "from_tensor",
    "split_alpha",
    "merge_alpha",
    "atomic_write",
]


@dataclass(frozen=True)
class ImageForm:
    """How an image came in (container, layout, dtype), so a result can be returned in the same form."""

    kind: str  # "pil" | "numpy" | "torch"
    channels: int
    ndim: int = 3
    dtype: Any = None  # numpy dtype or torch dtype of the input
    device: Any = None  # torch device of a tensor input
    mode: str | None = None  # PIL mode of a PIL input

    @property
    def has_alpha(self) -> bool:
        """True when the last channel is an alpha channel (LA or RGBA)."""
        return self.channels in (2, 4)


def _check_channels(c: int, where: str) -> None:
    if c not in _PIL_MODE_BY_CHANNELS:
        raise ValueError(f"{where}: expected 1, 2, 3 or 4 channels (gray, gray+alpha, RGB, RGBA), got {c}")


def _numpy_to_float(arr: np.ndarray, check_range: bool) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if arr.dtype in _INT_MAX:
        return arr.astype(np.float32) / _INT_MAX[arr.dtype]
    if np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32) if arr.dtype != np.float64 else arr
        if check_range:
            if not np.all(np.isfinite(out)):
                raise ValueError("float image contains NaN or Inf")
            if out.size and (out.min() < 0.0 or out.max() > 1.0):
                raise ValueError(
                    f"float image values must lie in [0, 1], got [{out.min():.4g}, {out.max():.4g}]"
                )
        return out
    raise ValueError(f"unsupported image dtype {arr.dtype}: use uint8, uint16, bool or float in [0, 1]")


def _pil_to_array(img: Image.Image) -> tuple[np.ndarray, str]:
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("1", "I", "I;16", "I;16B", "I;16L"):
        if mode == "1":
            img = img.convert("L")
        else:
            arr = np.asarray(img)
            if arr.max(initial=0) > 65535 or arr.min(initial=0) < 0:
                raise ValueError(f"PIL mode {mode} with values outside 0..65535 is not supported")
            return arr.astype(np.uint16), img.mode
    elif mode not in ("L", "LA", "RGB", "RGBA", "F"):
        img = img.convert("RGB")
    return np.asarray(img), img.mode


def to_tensor(
    image: ImageLike, *, dtype: torch.dtype = torch.float32, check_range: bool = True
) -> tuple[torch.Tensor, ImageForm]:
    """Convert a PIL image, numpy array or torch tensor to a float ``NxCxHxW`` tensor in [0, 1].

    Returns the tensor and the :class:`ImageForm` needed by :func:`from_tensor` to convert back.
    """
    if isinstance(image, Image.Image):
        arr, mode = _pil_to_array(image)
        t, _ = to_tensor(arr, dtype=dtype, check_range=check_range)
        return t, ImageForm("pil", channels=t.shape[1], mode=mode)
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            arr = image[:, :, None]
        elif image.ndim == 3:
            arr = image
        else:
            raise ValueError(f"numpy image must be HxW or HxWxC, got shape {image.shape}")
        _check_channels(arr.shape[2], f"numpy image of shape {image.shape}")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"empty image of shape {image.shape}")
        f = _numpy_to_float(arr, check_range)
        t = torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1))).unsqueeze(0).to(dtype)
        return t, ImageForm("numpy", channels=arr.shape[2], ndim=image.ndim, dtype=image.dtype)
    if isinstance(image, torch.Tensor):
        if image.ndim == 3:
            t = image.unsqueeze(0)
        elif image.ndim == 4:
            t = image
        else:
            raise ValueError(f"torch image must be CxHxW or NxCxHxW, got shape {tuple(image.shape)}")
        _check_channels(t.shape[1], f"torch image of shape {tuple(image.shape)}")
        if t.shape[2] == 0 or t.shape[3] == 0 or t.shape[0] == 0:
            raise ValueError(f"empty image of shape {tuple(image.shape)}")
        form = ImageForm("torch", channels=t.shape[1], ndim=image.ndim, dtype=image.dtype, device=image.device)
        t = t.detach()
        if t.dtype == torch.uint8:
            return t.to(dtype) / 255.0, form
        if t.dtype == torch.bool:
            return t.to(dtype), form
        if not t.is_floating_point():
            raise ValueError(f"unsupported tensor dtype {t.dtype}: use uint8 or float in [0, 1]")
        t = t.to(dtype)
        if check_range:
            if not torch.isfinite(t).all():
                raise ValueError("float image contains NaN or Inf")
            lo, hi = float(t.min()), float(t.max())
            if lo < 0.0 or hi > 1.0:
                raise ValueError(f"float image values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
        return t, form
    raise ValueError(f"unsupported image type {type(image).__name__}: use a PIL image, numpy array or torch tensor")


def from_tensor(t: torch.Tensor, form: ImageForm) -> ImageLike:
    """Convert a float ``NxCxHxW`` tensor in [0, 1] back to the form recorded by :func:`to_tensor`."""
    if t.ndim != 4:
        raise ValueError(f"expected an NxCxHxW tensor, got shape {tuple(t.shape)}")
    t = t.detach().clamp(0.0, 1.0)
    if form.kind == "torch":
        out = t if form.ndim == 4 else t[0]
        if form.dtype == torch.uint8:
            out = (out * 255.0).round().to(torch.uint8)
        elif form.dtype == torch.bool:
            out = out > 0.5
        else:
            out = out.to(form.dtype)
        return out.to(form.device)
    if t.shape[0] != 1:
        raise ValueError(f"a batch of {t.shape[0]} images cannot be returned as one {form.kind} image")
    arr = t[0].permute(1, 2, 0).cpu().numpy()
    if form.kind == "pil":
        c = arr.shape[2]
        mode = form.mode if form.mode in ("L", "LA", "RGB", "RGBA") and len(form.mode) == c else None
        if form.mode in ("I", "I;16", "I;16B", "I;16L") and c == 1:
            return Image.fromarray((arr[:, :, 0] * 65535.0).round().astype(np.uint16))
        if form.mode == "F" and c == 1:
            return Image.fromarray(arr[:, :, 0].astype(np.float32), mode="F")
        u8 = (arr * 255.0).round().astype(np.uint8)
        mode = mode or _PIL_MODE_BY_CHANNELS[c]
        return Image.fromarray(u8[:, :, 0] if c == 1 else u8, mode=mode)
    if form.kind == "numpy":
        dtype = np.dtype(form.dtype)
        if dtype in _INT_MAX:
            arr = (arr.astype(np.float64) * _INT_MAX[dtype]).round().astype(dtype)
        elif dtype == np.bool_:
            arr = arr > 0.5
        else:
            arr = arr.astype(dtype)
        return arr[:, :, 0] if form.ndim == 2 and arr.shape[2] == 1 else arr
    raise ValueError(f"unknown image form {form.kind!r}")


def split_alpha(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Split ``NxCxHxW`` into (colour channels, alpha or None); C=2 is gray+alpha, C=4 is RGB+alpha."""
    if t.shape[1] in (2, 4):
        return t[:, :-1], t[:, -1:]
    return t, None


def merge_alpha(colour: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """Re-attach an alpha channel (resized bicubically to the colour size if the sizes differ)."""
    if alpha is None:
        return colour
    alpha = alpha.to(colour.device, colour.dtype)
    if alpha.shape[-2:] != colour.shape[-2:]:
        alpha = torch.nn.functional.interpolate(alpha, size=colour.shape[-2:], mode="bicubic", align_corners=False)
        alpha = alpha.clamp(0.0, 1.0)
    return torch.cat([colour, alpha], dim=1)


def load_image(path: str | os.PathLike) -> Image.Image:
    """Load an image file fully into memory as a PIL image.

    Raises FileNotFoundError for a missing file and ValueError for a file that is not an image.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such image file: {p}")
    try:
        with Image.open(p) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"not a readable image file: {p} ({e.__class__.__name__})") from None


def save_image(image: ImageLike, path: str | os.PathLike) -> Path:
    """Save any supported image form to ``path`` (format from the extension), atomically."""
    if isinstance(image, Image.Image):
        pil = image
    else:
        t, form = to_tensor(image)
        pil = from_tensor(t[:1], ImageForm("pil", channels=t.shape[1]))
    p = Path(path)
    fmt = Image.registered_extensions().get(p.suffix.lower())
    if fmt is None:
        raise ValueError(f"unknown image file extension {p.suffix!r} for {p}")
    if fmt == "JPEG" and pil.mode in ("LA", "RGBA"):
        pil = pil.convert(pil.mode[:-1] if pil.mode == "LA" else "RGB")
    return atomic_write(p, lambda tmp: pil.save(tmp, format=fmt))
