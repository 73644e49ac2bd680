"""Metrics recompute the published numbers of DIP / CBM3D / Papyan et al. from their output images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nasdip_zoo.imageio import load_image
from nasdip_zoo.metrics import psnr, psnr_y, rgb_to_y, ssim

SET5 = ["baby", "bird", "butterfly", "head", "woman"]
BM3D_GT = {
    "F16": "image_F16_512rgb",
    "baboon": "image_Baboon512rgb",
    "house": "image_House256rgb",  # "hill" on the DIP project page
    "lena": "image_Lena512rgb",
    "peppers": "image_Peppers512rgb",
    "kodim01": "kodim01",
    "kodim02": "kodim02",
    "kodim03": "kodim03",
    "kodim12": "kodim12",
}
HEIDE = ["barbara", "boat", "house", "Lena512", "peppers256", "Cameraman256", "couple", "fingerprint", "hill", "man", "montage"]


def test_set5_x4_dip_psnr_y(data_dir):
    d = data_dir / "set5"
    vals = [psnr_y(load_image(d / f"x4_dip_result/{n}_deep_prior.png"), load_image(d / f"x4_GT/{n}_GT.png")) for n in SET5]
    assert np.mean(vals) == pytest.approx(29.90, abs=0.01)


@pytest.mark.parametrize("method,suffix,published", [("dip", "deep_prior", 31.29), ("cbm3d", "bm3d", 31.42)])
def test_bm3d_sigma25_rgb_psnr(data_dir, method, suffix, published):
    d = data_dir / "bm3d"
    vals = [psnr(load_image(d / f"sigma25_{method}_result/{k}_{suffix}.png"), load_image(d / f"gt/{v}.png")) for k, v in BM3D_GT.items()]
    assert np.mean(vals) == pytest.approx(published, abs=0.01)


@pytest.mark.parametrize("folder,suffix,published", [("50p_dip_result", "deep_prior", 33.44), ("50p_papyan_result", "papyan", 31.16)])
def test_heide_50p_gray_psnr(data_dir, folder, suffix, published):
    d = data_dir / "heide_inpainting"
    vals = [psnr(load_image(d / f"{folder}/{n}_{suffix}.png"), load_image(d / f"gt/{n}.png")) for n in HEIDE]
    assert np.mean(vals) == pytest.approx(published, abs=0.01)


def test_psnr_y_shave_is_dips_asymmetric_crop():
    # error only in the last 5 rows/cols would be removed by DIP's [r0+4 : r1-4] with r1 = last index
    ref = torch.full((1, 3, 40, 40), 0.5, dtype=torch.float64)
    out = ref.clone()
    out[..., 35:, :] = 0.9  # bottom 5 rows differ
    assert psnr_y(out, ref) == math.inf
    out2 = ref.clone()
    out2[..., 34, :] = 0.9  # the 6th row from the bottom is scored
    assert psnr_y(out2, ref) < 60
    out3 = ref.clone()
    out3[..., 3, :] = 0.9  # top: only 4 rows are shaved
    assert psnr_y(out3, ref) == math.inf
    out4 = ref.clone()
    out4[..., 4, :] = 0.9
    assert psnr_y(out4, ref) < 60


def test_psnr_y_uses_bounding_box_of_output_content():
    ref = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = torch.zeros_like(ref)
    out[..., 8:40, 8:40] = ref[..., 8:40, 8:40]
    assert psnr_y(out, ref) == math.inf  # zero border is excluded, content matches exactly
    assert psnr_y(out, ref, crop_to_content=False) < 20


def test_rgb_to_y_range():
    assert float(rgb_to_y(torch.zeros(1, 3, 1, 1))) == pytest.approx(16 / 255)
    assert float(rgb_to_y(torch.ones(1, 3, 1, 1))) == pytest.approx(235 / 255)


def test_psnr_known_value_and_forms():
    a = np.zeros((8, 8, 3), np.float64)
    b = np.full((8, 8, 3), 0.1)
    assert psnr(a, b) == pytest.approx(20.0)
    assert psnr(torch.from_numpy(a).permute(2, 0, 1), (b * 255).round().astype(np.uint8)) == pytest.approx(
        10 * math.log10(1 / (26 / 255) ** 2)
    )
    assert psnr(a, a) == math.inf
    with pytest.raises(ValueError):
        psnr(a, np.zeros((8, 9, 3)))


def test_ssim_matches_skimage(data_dir):
    skm = pytest.importorskip("skimage.metrics")
    a = np.asarray(load_image(data_dir / "bm3d/sigma25_dip_result/house_deep_prior.png"))[:64, :80] / 255.0
    b = np.asarray(load_image(data_dir / "bm3d/gt/image_House256rgb.png"))[:64, :80] / 255.0
    ref = skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=2)
    assert ssim(a, b) == pytest.approx(ref, abs=1e-10)
    assert ssim(a[..., 0], b[..., 0]) == pytest.approx(
        skm.structural_similarity(a[..., 0], b[..., 0], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0),
        abs=1e-10,
    )
    assert ssim(b, b) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ssim(a[:8, :8], b[:8, :8])


def test_psnr_per_image_matches_psnr_and_stays_on_the_device():
    import math

    import torch

    from nasdip_zoo.metrics import psnr, psnr_per_image

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 3, 8, 9, generator=g), torch.rand(3, 3, 8, 9, generator=g)
    out = psnr_per_image(x, y)
    assert out.dtype == torch.float64 and out.shape == (3,)
    for i in range(3):
        assert abs(float(out[i]) - psnr(x[i : i + 1], y[i : i + 1])) < 1e-9
    assert math.isinf(float(psnr_per_image(x[:1], x[:1])[0]))
