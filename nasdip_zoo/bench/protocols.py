"""The paper's evaluation protocols (NASDIP_FACTS section 6): how each benchmark image is degraded and scored.

A protocol turns an image file into a :class:`Sample` (ground truth, observation, operator arguments)
and scores a restored image with the task's metric: Y-channel PSNR with DIP's shave for
super-resolution, full-image RGB PSNR for denoising, full-image PSNR for inpainting.
Degradations are seeded per (image, seed), so every method sees the same observation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

__all__ = [
    "Sample",
    "Protocol",
    "SRProtocol",
    "DenoiseProtocol",
    "InpaintProtocol",
    "make_protocol",
    "list_images",
    "center_crop",
    "IMAGE_SUFFIXES",
    "MASK_MODES",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MASK_MODES = ("heide", "bernoulli", "published")
SIGMA = 25.0 / 255.0


@dataclass
class Sample:
    """One prepared benchmark image: float32 HxWxC arrays in [0, 1] and what the restorer needs."""

    name: str
    ground_truth: np.ndarray
    observation: np.ndarray
    operator: str
    scale: int | None = None
    mask: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


def list_images(folder: str | Path, names: Sequence[str] | None = None) -> list[Path]:
    """Image files of ``folder`` (sorted), optionally only those whose stem or file name is in ``names``."""
    d = Path(folder)
    if not d.is_dir():
        raise FileNotFoundError(f"--data {d}: no such folder (give a folder of images)")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"--data {d}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    if names:
        by = {}
        for p in files:
            by[p.stem] = p
            by[p.name] = p
        missing = [n for n in names if n not in by]
        if missing:
            raise ValueError(f"--images {missing} not found in {d}; it has {[p.stem for p in files]}")
        files = [by[n] for n in names]
    return files


def center_crop(arr: np.ndarray, size: int | None) -> np.ndarray:
    """The centre ``size x size`` crop of an HxW[xC] array (None: unchanged)."""
    if size is None:
        return arr
    h, w = arr.shape[:2]
    if h < size or w < size:
        raise ValueError(f"image of size {h}x{w} is smaller than the crop {size}x{size}; use a smaller --crop")
    top, left = (h - size) // 2, (w - size) // 2
    return arr[top : top + size, left : left + size]


def _dip_crop(arr: np.ndarray, size: int | None, multiple: int = 32) -> np.ndarray:
    """DIP's ``crop_image`` (the centred box of the largest size divisible by ``multiple``), then the
    preset's centre ``size`` crop, as a contiguous array; arrays of one H x W get the same box."""
    h, w = arr.shape[:2]
    nh, nw = h - h % multiple, w - w % multiple
    if nh == 0 or nw == 0:
        raise ValueError(f"image of size {h}x{w} is smaller than {multiple}x{multiple}")
    top, left = (h - nh) // 2, (w - nw) // 2
    return np.ascontiguousarray(center_crop(arr[top : top + nh, left : left + nw], size))


def _seed_for(name: str, seed: int) -> int:
    """A stable per-(image, seed) integer, so degradations do not depend on the order of the images."""
    return (zlib.crc32(name.encode("utf-8")) + 1_000_003 * int(seed)) % (2**31 - 1)


def _load(path: Path, mode: str) -> np.ndarray:
    from ..imageio import load_image

    img = load_image(path)
    if img.mode != mode:
        img = img.convert(mode)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[..., None] if arr.ndim == 2 else arr


class Protocol(ABC):
    """Base: ``prepare(path, seed)`` -> Sample; ``score(output, ground_truth)`` -> PSNR in dB."""

    task: str = ""
    metric: str = ""

    def __init__(self, crop: int | None = None) -> None:
        if crop is not None and (crop < 64 or crop % 32):
            raise ValueError(f"--crop {crop}: must be a multiple of 32 and at least 64 (the 5-level networks halve it 5 times)")
        self.crop = crop

    @property
    def key(self) -> str:
        """Identifies the protocol's settings in a results file (a resume must use the same)."""
        return f"{self.task}"

    def config(self) -> dict[str, Any]:
        return {"task": self.task, "metric": self.metric, "crop": self.crop}

    @abstractmethod
    def prepare(self, path: str | Path, seed: int) -> Sample:
        """The degraded observation (and what the restorer needs) of one image under this protocol."""

    @abstractmethod
    def score(self, output: Any, ground_truth: Any) -> float:
        """The protocol's metric (PSNR in dB) of an output against the ground truth."""

    def ssim(self, output: Any, ground_truth: Any) -> float:
        """Mean SSIM (on the same region and channel as :meth:`score`)."""
        from ..metrics import ssim

        return ssim(output, ground_truth)

    @abstractmethod
    def curve_value(self, info: dict[str, Any], ground_truth: torch.Tensor) -> float:
        """The protocol's PSNR of one iteration, from the restorer's callback ``info``."""


class SRProtocol(Protocol):
    """DIP's super-resolution protocol: HR centre-cropped to a multiple of 32, LR = PIL Lanczos to size // factor,
    scored by PSNR on Y (BT.601) with DIP's 4 px shave (4 top/left, 5 bottom/right)."""

    task = "sr"
    metric = "psnr_y (BT.601 Y scaled to 16..235 / 255, shave 4 as DIP's super-resolution_eval_script)"

    def __init__(self, scale: int = 4, crop: int | None = None) -> None:
        super().__init__(crop)
        if scale not in (2, 4, 8):
            raise ValueError(f"--scale {scale}: super-resolution scale must be 2, 4 or 8")
        self.scale = int(scale)

    @property
    def key(self) -> str:
        return f"sr_x{self.scale}"

    def config(self) -> dict[str, Any]:
        return {**super().config(), "scale": self.scale}

    def prepare(self, path: str | Path, seed: int) -> Sample:
        from ..operators import lanczos_lr

        p = Path(path)
        hr = _dip_crop(_load(p, "RGB"), self.crop)
        hr8 = Image.fromarray(np.round(hr * 255.0).astype(np.uint8))  # exact 8-bit pixels, as DIP resizes them
        lr = np.asarray(lanczos_lr(hr8, self.scale), dtype=np.float32) / 255.0
        return Sample(p.stem, hr, lr, "sr", scale=self.scale, info={"hr_size": list(hr.shape[:2]), "lr_size": list(lr.shape[:2])})

    def score(self, output: Any, ground_truth: Any) -> float:
        from ..metrics import psnr_y

        return psnr_y(output, ground_truth, shave=4, crop_to_content=True)

    def ssim(self, output: Any, ground_truth: Any) -> float:
        """SSIM on the Y channel over the same shaved region as the PSNR."""
        from ..imageio import to_tensor
        from ..metrics import rgb_to_y, ssim

        a = rgb_to_y(to_tensor(output, dtype=torch.float64, check_range=False)[0][:, :3])[..., 4:-5, 4:-5]
        b = rgb_to_y(to_tensor(ground_truth, dtype=torch.float64, check_range=False)[0][:, :3])[..., 4:-5, 4:-5]
        return ssim(a, b)

    def curve_value(self, info: dict[str, Any], ground_truth: torch.Tensor) -> float:
        if info.get("rolled_back"):
            return math.nan
        return self.score(info["output"], ground_truth)


class DenoiseProtocol(Protocol):
    """DIP's denoising protocol: crop to a multiple of 32, add N(0, (25/255)^2) to RGB (seeded), clip to [0, 1];
    score the EMA output by RGB PSNR over the whole image."""

    task = "denoise"
    metric = "psnr (RGB, whole image, data range 1) of the EMA output"

    def __init__(self, sigma: float = SIGMA, crop: int | None = None) -> None:
        super().__init__(crop)
        self.sigma = float(sigma)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "sigma": self.sigma}

    def prepare(self, path: str | Path, seed: int) -> Sample:
        from ..operators import add_gaussian_noise

        p = Path(path)
        gt = _dip_crop(_load(p, "RGB"), self.crop)
        noise_seed = _seed_for(p.stem, seed)
        noisy = np.asarray(add_gaussian_noise(gt, self.sigma, seed=noise_seed), dtype=np.float32)
        return Sample(p.stem, gt, noisy, "denoise", info={"noise_seed": noise_seed, "sigma": self.sigma})

    def score(self, output: Any, ground_truth: Any) -> float:
        from ..metrics import psnr

        return psnr(output, ground_truth)

    def curve_value(self, info: dict[str, Any], ground_truth: torch.Tensor) -> float:
        v = info.get("ema_psnr", math.nan)
        return float(v) if v is not None and not math.isnan(v) else float(info.get("psnr", math.nan))


class InpaintProtocol(Protocol):
    """The Heide-set inpainting protocol: grayscale, 50% of pixels kept, raw output scored by PSNR over the
    whole image. Masks: ``heide`` (the reproducible NumPy seed-100 mask of the full image, FACTS section 7;
    the same for every seed), ``bernoulli`` (seeded per image and seed) or ``published`` (recovered from
    DIP's ``50p_masked`` inputs as ``masked > 0``)."""

    task = "inpaint"
    metric = "psnr (grayscale, whole image, data range 1) of the raw output"

    def __init__(self, masks: str = "heide", keep: float = 0.5, crop: int | None = None, masks_dir: str | Path | None = None) -> None:
        super().__init__(crop)
        if masks not in MASK_MODES:
            raise ValueError(f"--masks {masks!r}: use one of {MASK_MODES}")
        if masks == "heide" and keep != 0.5:
            raise ValueError("the Heide mask keeps 50% of pixels; use --masks bernoulli for another fraction")
        self.masks = masks
        self.keep = float(keep)
        self.masks_dir = Path(masks_dir) if masks_dir is not None else None

    def config(self) -> dict[str, Any]:
        return {**super().config(), "masks": self.masks, "keep": self.keep}

    def _published_mask(self, path: Path) -> np.ndarray:
        folder = self.masks_dir or path.parent.parent / "50p_masked"
        cand = [folder / f"{path.stem}_masked.png", folder / path.name]
        for c in cand:
            if c.is_file():
                return (_load(c, "L")[..., 0] > 0).astype(np.float32)
        raise FileNotFoundError(
            f"--masks published: no {cand[0].name} in {folder}; give --masks-dir with DIP's 50p_masked inputs"
        )

    def prepare(self, path: str | Path, seed: int) -> Sample:
        from ..operators import bernoulli_mask, heide_mask

        p = Path(path)
        gt = _load(p, "L")
        h, w = gt.shape[:2]
        if self.masks == "heide":
            mask = heide_mask(h, w)
        elif self.masks == "bernoulli":
            mask = bernoulli_mask((h, w), self.keep, seed=_seed_for(p.stem, seed))
        else:
            mask = self._published_mask(p)
            if mask.shape != (h, w):
                raise ValueError(f"published mask of {p.stem} is {mask.shape}, the image {(h, w)}")
        gt, mask = _dip_crop(gt, self.crop), _dip_crop(mask, self.crop)  # one H x W: the same box
        obs = gt * mask[..., None]
        return Sample(p.stem, gt, obs, "inpaint", mask=mask, info={"kept_fraction": float(mask.mean()), "masks": self.masks})

    def score(self, output: Any, ground_truth: Any) -> float:
        from ..metrics import psnr

        return psnr(output, ground_truth)

    def curve_value(self, info: dict[str, Any], ground_truth: torch.Tensor) -> float:
        return float(info.get("psnr", math.nan))


def make_protocol(task: str, *, crop: int | None = None, scale: int = 4, masks: str = "heide",
                  masks_dir: str | Path | None = None) -> Protocol:
    """The protocol of ``task`` ('sr', 'denoise', 'inpaint') with its options."""
    if task == "sr":
        return SRProtocol(scale=scale, crop=crop)
    if task == "denoise":
        return DenoiseProtocol(crop=crop)
    if task == "inpaint":
        return InpaintProtocol(masks=masks, crop=crop, masks_dir=masks_dir)
    raise ValueError(f"unknown benchmark task {task!r}: use sr, denoise or inpaint")
