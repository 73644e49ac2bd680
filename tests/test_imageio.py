"""Every supported input form converts to NxCxHxW float in [0, 1] and back to the same form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nasdip_zoo.imageio import from_tensor, load_image, merge_alpha, save_image, split_alpha, to_tensor

RNG = np.random.default_rng(0)
U8_RGB = RNG.integers(0, 256, (17, 23, 3), dtype=np.uint8)


def _forms():
    u8 = U8_RGB
    f = u8.astype(np.float32) / 255
    yield "np_u8_hw", u8[..., 0]
    yield "np_u8_hwc", u8
    yield "np_u8_hw1", u8[..., :1]
    yield "np_u8_rgba", np.dstack([u8, u8[..., :1]])
    yield "np_u16", (u8.astype(np.uint16) * 257)
    yield "np_f32", f
    yield "np_f64_hw", f[..., 1].astype(np.float64)
    yield "np_bool", u8[..., 0] > 127
    yield "pil_L", Image.fromarray(u8[..., 0])
    yield "pil_LA", Image.fromarray(np.dstack([u8[..., 0], u8[..., 1]]), mode="LA")
    yield "pil_RGB", Image.fromarray(u8)
    yield "pil_RGBA", Image.fromarray(np.dstack([u8, u8[..., :1]]))
    yield "torch_chw", torch.from_numpy(f).permute(2, 0, 1).contiguous()
    yield "torch_nchw", torch.from_numpy(f).permute(2, 0, 1)[None].double()
    yield "torch_u8", torch.from_numpy(u8).permute(2, 0, 1).contiguous()
    yield "torch_gray", torch.from_numpy(f[..., :1]).permute(2, 0, 1).contiguous()


def _same(a, b):
    if isinstance(a, Image.Image):
        assert isinstance(b, Image.Image) and a.mode == b.mode and a.size == b.size
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), atol=1e-6)
    else:
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name,img", list(_forms()), ids=[n for n, _ in _forms()])
def test_round_trip(name, img):
    t, form = to_tensor(img)
    assert t.ndim == 4 and t.shape[0] == 1 and t.dtype == torch.float32
    assert t.shape[-2:] == (17, 23)
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    _same(img, from_tensor(t, form))


def test_channel_meaning_and_values():
    t, form = to_tensor(U8_RGB)
    assert t.shape == (1, 3, 17, 23) and not form.has_alpha
    assert float(t[0, 1, 2, 3]) == pytest.approx(U8_RGB[2, 3, 1] / 255)
    t4, f4 = to_tensor(Image.fromarray(np.dstack([U8_RGB, U8_RGB[..., :1]])))
    assert f4.has_alpha
    colour, alpha = split_alpha(t4)
    assert colour.shape[1] == 3 and alpha.shape[1] == 1
    torch.testing.assert_close(merge_alpha(colour, alpha), t4)
    big = merge_alpha(torch.zeros(1, 3, 34, 46), alpha)  # SR: alpha follows the output size
    assert big.shape == (1, 4, 34, 46) and 0 <= float(big[:, 3].min()) and float(big[:, 3].max()) <= 1


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4, 5), np.uint8),
        np.zeros((2, 4, 4, 3), np.uint8),
        np.zeros((4,), np.uint8),
        np.zeros((4, 4), np.int64),
        np.full((4, 4), 1.5, np.float32),
        np.full((4, 4), np.nan, np.float32),
        np.zeros((0, 4), np.uint8),
        torch.zeros(4, 4),
        torch.zeros(1, 7, 4, 4),
        torch.zeros(3, 4, 4, dtype=torch.int32),
        torch.full((3, 4, 4), -0.1),
        "not an image",
    ],
)
def test_bad_inputs_raise_value_error(bad):
    with pytest.raises(ValueError):
        to_tensor(bad)


def test_save_load_round_trip_and_atomicity(tmp_path):
    p = save_image(U8_RGB, tmp_path / "x.png")
    np.testing.assert_array_equal(np.asarray(load_image(p)), U8_RGB)
    save_image(torch.from_numpy(U8_RGB).permute(2, 0, 1), tmp_path / "y.png")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "y.png")), U8_RGB)
    with pytest.raises(ValueError):
        save_image(U8_RGB, tmp_path / "x.unknownext")
    with pytest.raises(FileNotFoundError):
        save_image(U8_RGB, tmp_path / "nope" / "x.png")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["x.png", "y.png"]  # no temp files left


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")
    (tmp_path / "t.png").write_text("hello")
    with pytest.raises(ValueError):
        load_image(tmp_path / "t.png")


def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path):
    from nasdip_zoo.imageio import atomic_write

    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def half_then_crash(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, half_then_crash)
    assert target.read_bytes() == b"old"  # the previous file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # and no temp file is left


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os
    import stat

    from nasdip_zoo.genotype import Genotype
    from nasdip_zoo.imageio import atomic_write

    mask = os.umask(0o022)
    try:
        p = atomic_write(tmp_path / "a.txt", lambda tmp: open(tmp, "w").write("x"))
        g = Genotype().save(tmp_path / "g.json")
    finally:
        os.umask(mask)
    for f in (p, g):
        assert stat.S_IMODE(f.stat().st_mode) == 0o644  # not mkstemp's private 0600
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.txt", "g.json"]
