"""Classical learning-free baselines: bicubic (SR), non-local means / TV / BM3D (denoising), biharmonic (inpainting).

Parameters are fixed from the noise level, never tuned on the ground truth. scikit-image is the
``bench`` extra; BM3D is the optional ``bm3d`` extra, whose licence allows non-commercial use only.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image

from .protocols import Sample

__all__ = ["BASELINES", "baseline_names", "run_baseline", "bm3d_available"]


def _skimage():
    try:
        import skimage.restoration as restoration
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the classical baselines need scikit-image: pip install 'nasdip-zoo[bench]'") from e
    return restoration


def bm3d_available() -> bool:
    """True when the optional ``bm3d`` package (non-commercial licence) can be imported."""
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


def bicubic(s: Sample) -> np.ndarray:
    """PIL bicubic upsampling of the LR image to the HR size."""
    h, w = s.ground_truth.shape[:2]
    lr8 = Image.fromarray(np.round(np.clip(s.observation, 0, 1) * 255.0).astype(np.uint8))
    return np.asarray(lr8.resize((w, h), Image.BICUBIC), dtype=np.float32) / 255.0


def nlm(s: Sample) -> np.ndarray:
    """scikit-image non-local means with the known sigma (h = 0.8 sigma, 5x5 patches, 13x13 search)."""
    r = _skimage()
    sigma = float(s.info.get("sigma", 25.0 / 255.0))
    out = r.denoise_nl_means(s.observation, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                             fast_mode=True, channel_axis=-1)
    return np.clip(out, 0, 1).astype(np.float32)


def tv(s: Sample) -> np.ndarray:
    """scikit-image TV denoising (Chambolle) with weight 0.08, fixed for sigma 25 (not tuned on test images)."""
    r = _skimage()
    out = r.denoise_tv_chambolle(s.observation, weight=0.08, channel_axis=-1)
    return np.clip(out, 0, 1).astype(np.float32)


def bm3d_rgb(s: Sample) -> np.ndarray:
    """CBM3D from the ``bm3d`` package (optional extra ``bm3d``; non-commercial licence)."""
    try:
        import bm3d
    except ImportError as e:
        raise ImportError("the bm3d baseline needs the optional package: pip install 'nasdip-zoo[bm3d]' "
                          "(its licence allows non-commercial use only)") from e
    sigma = float(s.info.get("sigma", 25.0 / 255.0))
    return np.clip(bm3d.bm3d_rgb(s.observation, sigma), 0, 1).astype(np.float32)


def biharmonic(s: Sample) -> np.ndarray:
    """scikit-image biharmonic inpainting of the holes (mask 0)."""
    r = _skimage()
    holes = s.mask < 0.5
    img = s.observation[..., 0] if s.observation.shape[-1] == 1 else s.observation
    out = r.inpaint_biharmonic(img, holes, channel_axis=None if img.ndim == 2 else -1)
    out = np.clip(out, 0, 1).astype(np.float32)
    return out[..., None] if out.ndim == 2 else out


BASELINES: dict[str, tuple[str, Callable[[Sample], np.ndarray]]] = {
    "bicubic": ("sr", bicubic),
    "nlm": ("denoise", nlm),
    "tv": ("denoise", tv),
    "bm3d": ("denoise", bm3d_rgb),
    "biharmonic": ("inpaint", biharmonic),
}


def baseline_names(task: str, installed_only: bool = True) -> list[str]:
    """The classical baselines of ``task`` (BM3D only when installed, unless ``installed_only=False``)."""
    return [n for n, (t, _) in BASELINES.items() if t == task and (n != "bm3d" or not installed_only or bm3d_available())]


def run_baseline(name: str, sample: Sample) -> np.ndarray:
    """Restore ``sample`` with the classical baseline ``name``; a float32 HxWxC image in [0, 1]."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; baselines: {sorted(BASELINES)}")
    task, fn = BASELINES[name]
    if task != sample.operator:
        raise ValueError(f"baseline {name!r} is for {task}, not {sample.operator}")
    return fn(sample)
