"""DIPRestorer: each task improves a real crop, runs are deterministic, resume equals uninterrupted,
backtracking and the NaN guard work, and every input form comes back in its own form."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from nasdip_zoo.genotype import Connections
from nasdip_zoo.imageio import load_image
from nasdip_zoo.metrics import psnr
from nasdip_zoo.operators import add_gaussian_noise, bernoulli_mask, lanczos_lr
from nasdip_zoo.restore import DIPRestorer, RestorationDiverged, RestoreResult, resolve_device
from nasdip_zoo.zoo import get_genotype


def small(name: str, channels: int = 16):
    """The zoo genotype at a width that keeps CPU tests fast (the architecture is unchanged)."""
    return get_genotype(name).replace(channels=channels, skip_channels=channels)


def tiny(name: str = "nasdip-denoise"):
    """A 3-level, 8-channel version with same-level skips only: for wiring tests, not quality."""
    return get_genotype(name).replace(channels=8, skip_channels=8, depth=3, connections=Connections(offsets=(0,)))


# --------------------------------------------------------------------- each task raises PSNR


def test_denoising_raises_psnr(data_dir):
    img = np.asarray(load_image(data_dir / "bm3d/gt/kodim03.png"))[200:248, 300:348].astype(np.float32) / 255
    noisy = add_gaussian_noise(img, 25 / 255, seed=0)
    res = DIPRestorer(small("nasdip-denoise"), iterations=250, progress=False).restore(noisy, ground_truth=img)
    gain = res.psnr - psnr(noisy, img)
    # measured: noisy 20.70 dB -> EMA output 26.24 dB after 250 iterations (+5.5 dB)
    assert gain > 3.5
    assert res.ema_image is not None and res.settings["ema"] == 0.99  # from the nasdip-denoise card
    assert psnr(res.output, img) == pytest.approx(res.psnr, abs=1e-4)  # reported = recomputed


def test_super_resolution_x2_beats_bicubic(data_dir):
    hr = load_image(data_dir / "set5/x4_GT/butterfly_GT.png").crop((96, 96, 160, 160))
    lr = lanczos_lr(hr, 2)
    bicubic = psnr(lr.resize(hr.size, Image.BICUBIC), hr)
    res = DIPRestorer(small("nasdip-sr"), iterations=250, progress=False).restore(lr, "sr", scale=2, ground_truth=hr)
    assert res.image.size == hr.size and res.ema_image is None  # the SR card has no EMA
    # measured: bicubic 26.66 dB, nearest 23.45 dB, output 27.68 dB (+1.02 dB over bicubic)
    assert res.psnr > bicubic + 0.3


def test_inpainting_fills_holes(data_dir):
    gt = np.asarray(load_image(data_dir / "heide_inpainting/gt/barbara.png"))[100:148, 100:148].astype(np.float32) / 255
    mask = bernoulli_mask(gt.shape, 0.5, seed=0)
    observed = gt * mask
    res = DIPRestorer(small("nasdip-inpaint"), iterations=150, progress=False).restore(observed, "inpaint", mask=mask, ground_truth=gt)
    assert res.image.shape == gt.shape and res.image.dtype == np.float32
    # measured: masked input 7.31 dB -> 29.98 dB after 150 iterations (+22.7 dB), and 14.4 dB above
    # filling the holes with the mean of the known pixels (15.57 dB)
    assert res.psnr > psnr(observed, gt) + 15
    fill = np.where(mask > 0, gt, gt[mask > 0].mean())
    assert res.psnr > psnr(fill, gt) + 8


# --------------------------------------------------------------------- settings


def test_defaults_come_from_the_card_and_are_overridable():
    s = DIPRestorer("nasdip-denoise", progress=False, device="cpu").settings_for("denoise")
    assert (s["iterations"], s["lr"], s["ema"], s["input_channels"], s["input_scale"]) == (3500, 0.01, 0.99, 32, 0.1)
    assert s["reg_noise_std"] == pytest.approx(1 / 30)
    s = DIPRestorer("nasdip-sr", progress=False).settings_for("sr")
    assert (s["iterations"], s["reg_noise_std"], s["ema"]) == (4500, 0.03, None)
    s = DIPRestorer("nasdip-inpaint", progress=False).settings_for("inpaint")
    assert (s["iterations"], s["lr"]) == (9000, 0.001)
    r = DIPRestorer("nasdip-denoise", iterations=7, lr=0.5, reg_noise_std=0.0, ema=False, input_channels=4, progress=False)
    s = r.settings_for("denoise")
    assert (s["iterations"], s["lr"], s["reg_noise_std"], s["ema"], s["input_channels"]) == (7, 0.5, 0.0, None, 4)
    # a bare genotype uses DIP's settings for the task
    assert DIPRestorer(tiny(), progress=False).settings_for("inpaint")["lr"] == 0.001


def test_bad_arguments():
    with pytest.raises(ValueError):
        DIPRestorer("no-such-genotype")
    with pytest.raises(ValueError):
        DIPRestorer(tiny(), iterations=0)
    with pytest.raises(ValueError):
        DIPRestorer(tiny(), ema=1.5)
    r = DIPRestorer(tiny(), iterations=1, progress=False)
    img = np.zeros((16, 16, 3), np.float32)
    with pytest.raises(ValueError):
        r.restore(img, ground_truth=np.zeros((16, 17, 3), np.float32))
    with pytest.raises(ValueError):
        r.restore(img, "sr", scale=3)
    with pytest.raises(ValueError):
        r.restore(img, "inpaint", mask=np.ones((8, 8)))
    with pytest.raises(ValueError):
        r.restore(torch.zeros(2, 3, 16, 16))


def test_device_resolution():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError):
            resolve_device("cuda")
    with pytest.raises(ValueError):
        resolve_device("banana")


# --------------------------------------------------------------------- determinism and resume


def _img(seed: int = 0, size: int = 24, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).random((size, size, channels)).astype(np.float32)


def test_seeded_runs_are_deterministic():
    img = _img()
    a = DIPRestorer(tiny(), iterations=6, seed=3, progress=False).restore(img)
    b = DIPRestorer(tiny(), iterations=6, seed=3, progress=False).restore(img)
    c = DIPRestorer(tiny(), iterations=6, seed=4, progress=False).restore(img)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.ema_image, b.ema_image)
    assert a.losses == b.losses
    assert not np.array_equal(a.image, c.image)
    # the global RNGs are not used (nor changed) by a seeded run
    state = torch.random.get_rng_state()
    DIPRestorer(tiny(), iterations=2, progress=False).restore(img)
    assert torch.equal(state, torch.random.get_rng_state())


class _Killed(Exception):
    pass


def test_resume_equals_uninterrupted(tmp_path):
    img = _img(1)
    gt = _img(2)
    kw = dict(iterations=12, seed=5, progress=False)
    full = DIPRestorer(tiny(), **kw).restore(img, ground_truth=gt)

    ckpt = tmp_path / "run.safetensors"

    def kill_at_8(i, info):
        if i == 8:
            raise _Killed

    with pytest.raises(_Killed):
        DIPRestorer(tiny(), **kw).restore(img, ground_truth=gt, checkpoint=ckpt, checkpoint_every=5, callback=kill_at_8)
    meta = json.loads((tmp_path / "run.safetensors.json").read_text())
    assert meta["state"]["iteration"] == 5  # the last save before the "kill"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.safetensors", "run.safetensors.json"]  # no temp files

    seen = []
    resumed = DIPRestorer(tiny(), **kw).restore(
        img, ground_truth=gt, checkpoint=ckpt, checkpoint_every=5, callback=lambda i, info: seen.append(i)
    )
    assert seen == list(range(6, 13))  # it really resumed at iteration 6
    np.testing.assert_array_equal(resumed.image, full.image)
    np.testing.assert_array_equal(resumed.ema_image, full.ema_image)
    assert resumed.losses == full.losses and resumed.ema_psnrs == full.ema_psnrs
    assert (resumed.oracle_psnr, resumed.oracle_iteration) == (full.oracle_psnr, full.oracle_iteration)
    assert resumed.iterations == 12

    # a finished checkpoint gives the same result without running again
    again = DIPRestorer(tiny(), **kw).restore(img, ground_truth=gt, checkpoint=ckpt, callback=lambda i, info: seen.append(-1))
    assert -1 not in seen
    np.testing.assert_array_equal(again.image, full.image)

    # a checkpoint of another run is refused, not silently mixed in
    with pytest.raises(ValueError, match="different run"):
        DIPRestorer(tiny(), iterations=12, seed=6, progress=False).restore(img, checkpoint=ckpt)


def test_bad_checkpoint_path_is_refused_before_any_iteration(tmp_path, monkeypatch):
    """A missing folder or a folder path fails at once, not at the first save minutes into the run."""
    from nasdip_zoo.fastpath import DIPStep

    ran = []
    fb = DIPStep.forward_backward
    monkeypatch.setattr(DIPStep, "forward_backward", lambda self, x: (ran.append(1), fb(self, x))[1])
    r = DIPRestorer(tiny(), iterations=3, progress=False)
    with pytest.raises(ValueError, match="checkpoint folder .*nope does not exist; create it"):
        r.restore(_img(), checkpoint=tmp_path / "nope" / "run.safetensors")
    with pytest.raises(ValueError, match="is a folder; give a file path"):
        r.restore(_img(), checkpoint=tmp_path)
    with pytest.raises(ValueError, match="checkpoint folder .*nope does not exist"):
        r.restore_many([_img(), _img()], checkpoint=tmp_path / "nope" / "many.safetensors")
    assert ran == []


def test_checkpoint_has_no_pickle(tmp_path):
    from safetensors import safe_open

    ckpt = tmp_path / "c.safetensors"
    DIPRestorer(tiny(), iterations=3, progress=False).restore(_img(), checkpoint=ckpt)
    with safe_open(str(ckpt), framework="pt") as f:
        keys = set(f.keys())
    assert {"z", "rng", "ema", "current"} <= keys
    assert any(k.startswith("net.") for k in keys) and any(k.startswith("opt.") for k in keys)
    sidecar = json.loads((tmp_path / "c.safetensors.json").read_text())
    assert sidecar["state"]["iteration"] == 3 and sidecar["settings"]["seed"] == 0
    assert len(sidecar["state"]["losses"]) == 3


# --------------------------------------------------------------------- backtracking and NaN guard


class _Faulty:
    """A deepinv-style physics (``.A``) that misbehaves at chosen calls."""

    def __init__(self, bad_calls, kind):
        self.calls = 0
        self.bad_calls = bad_calls
        self.kind = kind

    def A(self, x):
        self.calls += 1
        if self.bad_calls == "always" or self.calls in self.bad_calls:
            return x * float("nan") if self.kind == "nan" else x + 1.0  # a loss jump of about 9 dB
        return x


@pytest.mark.parametrize("kind", ["nan", "jump"])
def test_backtracking_rolls_back_and_output_stays_finite(kind):
    img = _img(3)
    res = DIPRestorer(tiny(), iterations=10, progress=False).restore(img, _Faulty({6}, kind))
    assert res.rollbacks == 1
    assert len(res.losses) == 10
    assert np.isfinite(res.image).all() and np.isfinite(res.ema_image).all()
    clean = DIPRestorer(tiny(), iterations=10, progress=False).restore(img, _Faulty(set(), kind))
    assert clean.rollbacks == 0


def test_backtracking_can_be_disabled_for_jumps_but_not_for_nan():
    img = _img(3)
    res = DIPRestorer(tiny(), iterations=10, backtrack_db=None, progress=False).restore(img, _Faulty({6}, "jump"))
    assert res.rollbacks == 0
    res = DIPRestorer(tiny(), iterations=10, backtrack_db=None, progress=False).restore(img, _Faulty({6}, "nan"))
    assert res.rollbacks == 1


def test_unrecoverable_nan_raises_clearly():
    img = _img(3)
    with pytest.raises(RestorationDiverged, match="NaN"):
        DIPRestorer(tiny(), iterations=5, progress=False).restore(img, _Faulty("always", "nan"))
    with pytest.raises(RestorationDiverged, match="in a row"):
        DIPRestorer(tiny(), iterations=30, max_rollbacks_in_a_row=3, progress=False).restore(
            img, _Faulty(set(range(4, 100)), "nan")
        )


# --------------------------------------------------------------------- forms, oracle, progress


def test_input_forms_come_back_in_their_form():
    rgb = (np.random.default_rng(0).random((20, 22, 3)) * 255).astype(np.uint8)
    alpha = np.random.default_rng(1).integers(0, 256, (20, 22), dtype=np.uint8)
    r = DIPRestorer(tiny(), iterations=2, progress=False)

    out = r.restore(Image.fromarray(np.dstack([rgb, alpha]))).image
    assert isinstance(out, Image.Image) and out.mode == "RGBA" and out.size == (22, 20)
    np.testing.assert_array_equal(np.asarray(out)[..., 3], alpha)  # alpha passed through unchanged

    out = r.restore(torch.from_numpy(rgb).permute(2, 0, 1).contiguous()).image
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8 and out.shape == (3, 20, 22)

    out = r.restore(torch.rand(1, 1, 20, 22, dtype=torch.float64)).image
    assert out.dtype == torch.float64 and out.shape == (1, 1, 20, 22)

    gray = rgb[..., 0].astype(np.float32) / 255
    res = r.restore(gray)
    assert res.image.shape == gray.shape and res.image.dtype == np.float32 and res.ema_image.shape == gray.shape

    # SR of a LA image: output 2x, alpha resized with it
    la = Image.fromarray(np.dstack([rgb[..., 0], alpha]), mode="LA")
    out = DIPRestorer(tiny("nasdip-sr"), iterations=1, progress=False).restore(la, "sr", scale=2).image
    assert out.mode == "LA" and out.size == (44, 40)


def test_user_module_and_callable_operator():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(32, 3, 3, padding=1)

        def forward(self, x):
            return torch.sigmoid(self.conv(x))

    net = Net()
    before = net.conv.weight.detach().clone()
    gray_obs = _img(4, size=16).mean(-1)  # a colour -> gray camera: the restorer makes colour from gray
    to_gray = lambda x: x.mean(1, keepdim=True)  # noqa: E731
    res = DIPRestorer(net, iterations=5, ema=False, progress=False).restore(gray_obs, to_gray, out_channels=3)
    assert torch.equal(net.conv.weight, before)  # the caller's module is not trained in place
    assert res.image.shape == (16, 16, 3) and res.ema_image is None and res.settings["operator"] == "CallableOperator"
    with pytest.raises(ValueError, match="operator maps"):
        DIPRestorer(net, iterations=1, progress=False).restore(_img(4, size=16), to_gray)


def test_oracle_is_labelled_and_never_the_output():
    img, gt = _img(5), _img(6)
    res = DIPRestorer(tiny(), iterations=8, progress=False).restore(img, ground_truth=gt)
    assert isinstance(res, RestoreResult)
    assert len(res.psnrs) == len(res.ema_psnrs) == len(res.losses) == 8
    assert res.oracle_psnr == max(res.ema_psnrs)
    assert res.ema_psnrs[res.oracle_iteration - 1] == res.oracle_psnr
    assert res.psnr == res.ema_psnrs[-1]
    assert psnr(res.oracle_image, gt) == pytest.approx(res.oracle_psnr, abs=1e-4)
    assert res.output is res.ema_image
    assert res.iterations == 8 and res.seconds > 0 and res.iterations_per_second > 0
    no_gt = DIPRestorer(tiny(), iterations=2, progress=False).restore(img)
    assert no_gt.psnrs is None and no_gt.oracle_psnr is None and no_gt.psnr is None


def test_callback_can_stop_early_and_sees_each_iteration():
    seen = []

    def cb(i, info):
        seen.append((i, math.isfinite(info["loss"]), tuple(info["output"].shape)))
        return i == 3

    res = DIPRestorer(tiny(), iterations=10, progress=False).restore(_img(), callback=cb)
    assert [s[0] for s in seen] == [1, 2, 3] and res.iterations == 3 and len(res.losses) == 3
    assert all(s[1] and s[2] == (1, 3, 24, 24) for s in seen)


def test_progress_bar_shows_and_silences(capsys):
    img, gt = _img(), _img(1)
    DIPRestorer(tiny(), iterations=3, progress=True).restore(img, ground_truth=gt)
    err = capsys.readouterr().err
    assert "loss" in err and "psnr" in err
    DIPRestorer(tiny(), iterations=3, progress=False).restore(img, ground_truth=gt)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_sidecar_is_standard_json_even_after_a_nan(tmp_path):
    def no_nan(token):
        raise AssertionError(f"non-standard JSON token {token}")

    ckpt = tmp_path / "n.safetensors"
    res = DIPRestorer(tiny(), iterations=5, progress=False).restore(_img(3), _Faulty({3}, "nan"), checkpoint=ckpt)
    meta = json.loads((tmp_path / "n.safetensors.json").read_text(), parse_constant=no_nan)
    assert meta["state"]["losses"][2] is None and meta["state"]["rollbacks"] == res.rollbacks == 1
    # and resuming that finished run restores the NaN of the record
    again = DIPRestorer(tiny(), iterations=5, progress=False).restore(_img(3), _Faulty(set(), "nan"), checkpoint=ckpt)
    assert math.isnan(again.losses[2]) and again.rollbacks == 1


def test_rollback_restores_weights_and_optimiser_exactly():
    # with a fixed input (no jitter) a rollback at iteration 6 returns to the state at the start of
    # iteration 5, so iteration 7 repeats iteration 5 exactly, and iteration 8 (after the same Adam
    # step) repeats iteration 6 of a clean run
    img = _img(7)
    kw = dict(iterations=9, reg_noise_std=0.0, progress=False)
    faulty = DIPRestorer(tiny(), **kw).restore(img, _Faulty({6}, "jump"))
    clean = DIPRestorer(tiny(), **kw).restore(img, _Faulty(set(), "jump"))
    assert faulty.rollbacks == 1
    assert faulty.losses[:5] == clean.losses[:5]
    assert faulty.losses[6] == clean.losses[4]
    assert faulty.losses[7] == clean.losses[5]


def test_backtracking_rule_shared_by_every_loop():
    """judge(): non-finite -> rollback; a PSNR drop of more than backtrack_db -> rollback; else accepted."""
    import math

    from nasdip_zoo.backtrack import judge, keeps_failing, no_good_state
    from nasdip_zoo.metrics import psnr_from_mse

    assert judge(math.nan, True, None, 5.0) == (pytest.approx(math.nan, nan_ok=True), "NaN/Inf in the output or loss")
    assert judge(0.01, False, 20.0, 5.0)[1] == "NaN/Inf in the output or loss"
    assert judge(0.01, True, None, 5.0) == (psnr_from_mse(0.01), None)  # 20 dB, nothing to compare with yet
    assert judge(0.01, True, 25.5, 5.0)[1] == "a drop of more than 5.0 dB"  # 20 < 25.5 - 5
    assert judge(0.01, True, 24.9, 5.0)[1] is None and judge(0.01, True, 99.0, None)[1] is None
    assert no_good_state(3, "x") == "iteration 3: x before any good state to roll back to; try a lower lr"
    assert keeps_failing(9, 21, "x") == "iteration 9: 21 rollbacks in a row (x); the run does not recover, try a lower lr"
