"""Image quality metrics with the exact protocols of DIP / NAS-DIP (PSNR, PSNR on Y, SSIM).

All functions accept any image form of :mod:`nasdip_zoo.imageio` (PIL, numpy, torch), compute in
float64 with data range 1, and compare the colour channels only (an alpha channel is ignored).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .imageio import ImageLike, split_alpha, to_tensor

__all__ = ["psnr", "psnr_from_mse", "psnr_per_image", "psnr_y", "ssim", "rgb_to_y"]


def _pair(x: ImageLike, y: ImageLike) -> tuple[torch.Tensor, torch.Tensor]:
    a, _ = to_tensor(x, dtype=torch.float64, check_range=False)
    b, _ = to_tensor(y, dtype=torch.float64, check_range=False)
    a, b = split_alpha(a)[0], split_alpha(b)[0]
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(f"image sizes differ: {tuple(a.shape[-2:])} vs {tuple(b.shape[-2:])}")
    if a.shape[1] != b.shape[1]:
        # gray vs colour: compare as colour (a gray image is R = G = B)
        if 1 in (a.shape[1], b.shape[1]):
            a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
        else:
            raise ValueError(f"channel counts differ: {a.shape[1]} vs {b.shape[1]}")
    return a, b.to(a.device)


def psnr_from_mse(mse: float, data_range: float = 1.0) -> float:
    """PSNR in dB of a mean squared error (inf for 0); DIP's backtracking reads its loss this way."""
    if mse <= 0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / mse)


def psnr(x: ImageLike, y: ImageLike, data_range: float = 1.0) -> float:
    """PSNR in dB over every pixel and colour channel (RGB or gray), as skimage's ``compare_psnr``."""
    a, b = _pair(x, y)
    return psnr_from_mse(float(torch.mean((a - b) ** 2)), data_range)


def psnr_per_image(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR (data range 1) of each image of an N x C x H x W batch, as a float64 tensor on the device.

    No host synchronisation, so optimisation loops can track it every iteration; inf where equal.
    """
    return -10.0 * torch.log10(((x.double() - y) ** 2).flatten(1).mean(1))


def rgb_to_y(t: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of an ``NxCxHxW`` tensor in [0, 1], mapped to [16, 235] / 255 (DIP's SR protocol)."""
    if t.shape[1] == 1:
        y = t
    else:
        y = 0.299 * t[:, 0:1] + 0.587 * t[:, 1:2] + 0.114 * t[:, 2:3]
    return (y * (235.0 - 16.0) + 16.0) / 255.0


def psnr_y(output: ImageLike, reference: ImageLike, shave: int = 4, crop_to_content: bool = True) -> float:
    """PSNR on the Y channel with DIP's super-resolution protocol.

    Crops both images to the bounding box of the output's non-zero pixels (DIP pastes its output
    into a zero border), then shaves ``shave`` px as DIP's script does: ``[r0+s : r1-s, c0+s : c1-s]``
    with r1/c1 the LAST non-zero index (so s+1 px go at the bottom and right).
    """
    out, ref = _pair(output, reference)
    r0, c0 = 0, 0
    r1, c1 = out.shape[-2] - 1, out.shape[-1] - 1
    if crop_to_content:
        nz = out[0].sum(0) > 0
        rows = torch.nonzero(nz.any(1)).flatten()
        cols = torch.nonzero(nz.any(0)).flatten()
        if rows.numel() == 0:
            raise ValueError("output image is all zero: no content to score")
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    rs, cs = slice(r0 + shave, r1 - shave), slice(c0 + shave, c1 - shave)
    a, b = rgb_to_y(out)[..., rs, cs], rgb_to_y(ref)[..., rs, cs]
    if a.numel() == 0:
        raise ValueError("nothing left to score after cropping and shaving")
    return psnr_from_mse(float(torch.mean((a - b) ** 2)))


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2.0
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def ssim(x: ImageLike, y: ImageLike, data_range: float = 1.0, win_size: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004: gaussian window 11, sigma 1.5, K1 0.01, K2 0.03), channels averaged.

    Matches skimage's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``: the mean is over the window-valid interior.
    """
    a, b = _pair(x, y)
    if min(a.shape[-2:]) < win_size:
        raise ValueError(f"SSIM needs images of at least {win_size}x{win_size}, got {tuple(a.shape[-2:])}")
    c = a.shape[1]
    g = _gaussian_window(win_size, sigma, a.dtype).to(a.device)
    wh = g.view(1, 1, 1, -1).expand(c, 1, 1, win_size)
    wv = g.view(1, 1, -1, 1).expand(c, 1, win_size, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, wh, groups=c), wv, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())
