"""Issue 6: the drop-in generators (CycleGAN contract, DoubleDIP dehazing, CompMirror factorization)."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import init

from nasdip_zoo import get_genotype, upsampling_cell
from nasdip_zoo.imageio import load_image, to_tensor
from nasdip_zoo.integrations.compmirror import DeepMatrixFactorization, FactorGenerator, scale_aligned_error
from nasdip_zoo.integrations.cyclegan import NASDIPGenerator, define_G, init_weights, norm_kind
from nasdip_zoo.integrations.doubledip import (
    DoubleDIPDehazer,
    box_filter,
    compose_haze,
    estimate_airlight,
    guided_filter,
    smoothness_loss,
)
from nasdip_zoo.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]


class Identity(nn.Module):  # what CycleGAN's get_norm_layer('none') builds in current versions
    def forward(self, x):
        return x


# the norm_layer values pytorch-CycleGAN-and-pix2pix passes (current and older get_norm_layer)
NORM_LAYERS = {
    "batch-class": (nn.BatchNorm2d, "batch"),
    "batch": (functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True), "batch"),
    "instance": (functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False), "instance"),
    "instance-old": (functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=True), "instance"),
    "none-old": (None, "none"),
    "none": (lambda c: Identity(), "none"),
}


def _small(name: str):
    g = get_genotype(name)
    return g.replace(channels=8, skip_channels=8 if g.backbone.merge == "sum" else 4)


def test_integrations_package_imports_nothing_heavy():
    code = "import sys, nasdip_zoo.integrations; print(sorted(m for m in sys.modules if 'integrations.' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------ CycleGAN
@pytest.mark.parametrize("key", sorted(NORM_LAYERS))
def test_generator_contract_any_size_range_and_norms(key):
    norm_layer, kind = NORM_LAYERS[key]
    torch.manual_seed(0)
    g = NASDIPGenerator(3, 2, ngf=8, norm_layer=norm_layer, genotype="nasdip-denoise")
    assert g.genotype.backbone.norm == kind and g.genotype.backbone.output_activation == "tanh"
    assert (g.input_nc, g.output_nc, g.ngf, g.genotype.backbone.channels) == (3, 2, 8, 8)
    norms = [m for m in g.modules() if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d))]
    if kind == "none":
        assert not norms
    else:
        probe = norm_layer(4)
        assert norms and all(type(m) is type(probe) for m in norms)
        assert all(m.track_running_stats == probe.track_running_stats and m.affine == probe.affine for m in norms)
    for h, w in [(32, 32), (64, 96), (37, 53), (20, 70)]:
        x = torch.rand(2, 3, h, w) * 2 - 1  # CycleGAN feeds images in [-1, 1]
        y = g(x)
        assert y.shape == (2, 2, h, w)
        assert torch.isfinite(y).all() and y.min() >= -1 and y.max() <= 1


def test_generator_other_genotypes_and_channels():
    for name in ["dip-skip", "nasdip-sr", "nasdip-inpaint"]:
        g = NASDIPGenerator(1, 3, ngf=8, norm_layer=nn.InstanceNorm2d, genotype=name)
        assert g(torch.rand(1, 1, 40, 24) * 2 - 1).shape == (1, 3, 40, 24)
    assert NASDIPGenerator(3, 3, ngf=8, genotype="dip-skip").genotype.backbone.skip_channels == 4


def test_norm_kind_rejects_unsupported_norms():
    assert norm_kind("instance") == "instance" and norm_kind(None) == "none"
    with pytest.raises(ValueError, match="GroupNorm"):
        norm_kind(lambda c: nn.GroupNorm(2, c))
    with pytest.raises(ValueError, match="norm="):
        norm_kind("layer")
    with pytest.raises(ValueError, match="callable"):
        norm_kind(3)


def _cyclegan_init(net: nn.Module, init_type: str, gain: float = 0.02) -> None:
    """The test's own statement of CycleGAN's init_weights rule (by class name, as that project does)."""
    for m in net.modules():
        name = m.__class__.__name__
        w = getattr(m, "weight", None)
        if w is not None and (name.find("Conv") != -1 or name.find("Linear") != -1):
            if init_type == "normal":
                init.normal_(w.data, 0.0, gain)
            elif init_type == "xavier":
                init.xavier_normal_(w.data, gain=gain)
            elif init_type == "kaiming":
                init.kaiming_normal_(w.data, a=0, mode="fan_in")
            else:
                init.orthogonal_(w.data, gain=gain)
            if getattr(m, "bias", None) is not None:
                init.constant_(m.bias.data, 0.0)
        elif name.find("BatchNorm2d") != -1:
            init.normal_(m.weight.data, 1.0, gain)
            init.constant_(m.bias.data, 0.0)


@pytest.mark.parametrize("init_type", ["normal", "xavier", "kaiming", "orthogonal"])
@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_generator_survives_cyclegan_init_weights(init_type, norm):
    torch.manual_seed(1)
    g = NASDIPGenerator(3, 3, ngf=8, norm_layer=norm)
    _cyclegan_init(g, init_type)
    convs = [m for m in g.modules() if "Conv" in type(m).__name__]
    assert len(convs) > 20  # the searched cells' convs are re-initialised too
    assert all(m.bias is None or not m.bias.any() for m in convs)
    if init_type == "normal":
        big = [m.weight for m in convs if m.weight.numel() >= 500]
        assert all(abs(w.std().item() - 0.02) < 0.005 for w in big)
    x = torch.rand(2, 3, 36, 44) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and y.abs().max() <= 1
    y.square().mean().backward()
    grads = [p.grad for p in g.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    if (norm, init_type) != ("none", "kaiming"):  # that pair saturates the tanh (documented limitation)
        assert g.head[0].weight.grad.abs().sum() > 0 and convs[0].weight.grad.abs().sum() > 0
    if norm != "none":  # with a norm the re-initialised generator still responds to its input
        assert float(y.detach().std()) > 1e-3
    # our define_G's initialisation is exactly that rule (same seed, same weights)
    torch.manual_seed(2)
    a = NASDIPGenerator(3, 3, ngf=8, norm_layer=norm)
    b = NASDIPGenerator(3, 3, ngf=8, norm_layer=norm)
    b.load_state_dict(a.state_dict())
    torch.manual_seed(3)
    _cyclegan_init(a, init_type)
    torch.manual_seed(3)
    init_weights(b, init_type)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_define_G_factory():
    torch.manual_seed(0)
    net = define_G(3, 3, 8, "nasdip", norm="instance", init_type="xavier", genotype=_small("nasdip-sr"))
    assert isinstance(net, NASDIPGenerator) and net.genotype.cell.upsample == "bicubic"
    assert define_G(3, 3, 8, "dip-skip", norm="batch").genotype.backbone.merge == "concat"
    with pytest.raises(ValueError, match="resnet_9blocks"):
        define_G(3, 3, 8, "resnet_9blocks")
    with pytest.raises(ValueError, match="norm="):
        define_G(3, 3, 8, "nasdip", norm="group")
    with pytest.raises(ValueError, match="init_type="):
        define_G(3, 3, 8, "nasdip", init_type="uniform")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            define_G(3, 3, 8, "nasdip", gpu_ids=[0])


def test_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    g = NASDIPGenerator(3, 3, ngf=8, norm_layer="instance", use_dropout=True)
    assert sum(isinstance(m, nn.Dropout) for m in g.modules()) == g.genotype.backbone.depth - 1
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert not torch.equal(g(x), g(x))
    g.eval()
    assert torch.equal(g(x), g(x))


def test_a_few_steps_reduce_the_cycle_loss():
    torch.manual_seed(0)
    g_ab = define_G(3, 3, 8, "nasdip", norm="instance")
    g_ba = define_G(3, 3, 8, "nasdip", norm="instance")
    a = torch.rand(2, 3, 32, 32) * 2 - 1
    opt = torch.optim.Adam(list(g_ab.parameters()) + list(g_ba.parameters()), lr=2e-4, betas=(0.5, 0.999))
    losses = []
    for _ in range(8):
        loss = (g_ba(g_ab(a)) - a).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.01, losses  # measured: about -0.025 over 8 steps at CycleGAN's lr


# ------------------------------------------------------------------------------------ DoubleDIP
def _naive_guided(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s colour guided filter pixel by pixel (windows clipped at the border)."""
    c, h, w = guide.shape
    a = np.zeros((c, h, w))
    b = np.zeros((h, w))
    win = lambda y, x: (slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1))  # noqa: E731
    for y in range(h):
        for x in range(w):
            sy, sx = win(y, x)
            I = guide[:, sy, sx].reshape(c, -1)
            p = src[sy, sx].reshape(-1)
            mu = I.mean(1)
            cov = (I * p).mean(1) - mu * p.mean()
            sigma = (I @ I.T) / I.shape[1] - np.outer(mu, mu)
            a[:, y, x] = np.linalg.solve(sigma + eps * np.eye(c), cov)
            b[y, x] = p.mean() - a[:, y, x] @ mu
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            sy, sx = win(y, x)
            out[y, x] = a[:, sy, sx].mean(axis=(1, 2)) @ guide[:, y, x] + b[sy, sx].mean()
    return out


@pytest.mark.parametrize("channels", [1, 3])
def test_guided_filter_matches_the_definition(channels):
    rng = np.random.default_rng(0)
    guide = rng.random((channels, 7, 9))
    src = rng.random((7, 9))
    ours = guided_filter(torch.tensor(guide)[None], torch.tensor(src)[None, None], 2, 1e-3)[0, 0].numpy()
    np.testing.assert_allclose(ours, _naive_guided(guide, src, 2, 1e-3), atol=1e-8)
    box = box_filter(torch.tensor(src)[None, None], 1)[0, 0].numpy()
    assert box[0, 0] == pytest.approx(src[:2, :2].mean()) and box[3, 4] == pytest.approx(src[2:5, 3:6].mean())


def _synthetic_haze(data_dir: Path, size: int = 32):
    img, _ = to_tensor(load_image(data_dir / "bm3d" / "gt" / "kodim03.png"))
    clean = torch.nn.functional.interpolate(img, scale_factor=0.125, mode="area")[..., 4 : 4 + size, 8 : 8 + size]
    yy = torch.linspace(0, 1, size).view(1, 1, size, 1)
    xx = torch.linspace(0, 1, size).view(1, 1, 1, size)
    t = 0.35 + 0.5 * (0.6 * yy + 0.4 * xx)  # smooth, known transmission
    a = torch.tensor([0.8, 0.82, 0.85]).view(1, 3, 1, 1)
    return clean, compose_haze(clean, t, a), t, a


def test_dark_channel_airlight_finds_dense_haze(data_dir):
    clean, _, _, a = _synthetic_haze(data_dir)
    t = torch.ones(1, 1, 32, 32) * 0.9
    t[..., :10, :10] = 0.02  # a patch of dense haze: the dark channel is brightest there
    est = estimate_airlight(compose_haze(clean, t, a))
    assert torch.allclose(est, a, atol=0.03)


def test_dehazing_beats_the_hazy_input(data_dir):
    clean, hazy, _, a = _synthetic_haze(data_dir)
    before = psnr(hazy, clean)
    r = DoubleDIPDehazer("nasdip-denoise", iterations=100, channels=8, progress=False, device="cpu").dehaze(
        hazy, airlight=a.flatten().tolist()
    )
    assert r.J.shape == clean.shape and r.t.shape == (1, 1, 32, 32) and r.A.shape == (1, 3, 1, 1)
    assert len(r.losses) == 100 and r.losses[-1] < 0.2 * r.losses[0]
    gain = psnr(r.J, clean) - before
    assert gain > 2.5, gain  # measured about +4.5 dB (14.5 -> 19 dB) at this setting


def test_dehazer_airlight_modes_and_errors(data_dir):
    _, hazy, _, a = _synthetic_haze(data_dir, size=24)
    g = _small("dip-skip")
    gen = DoubleDIPDehazer(g, airlight="generated", iterations=3, progress=False, device="cpu").dehaze(hazy)
    assert gen.A.shape == (1, 3, 24, 24) and len(gen.losses) == 3
    dc = DoubleDIPDehazer(g, g, airlight="dark_channel", iterations=2, max_size=16, progress=False, device="cpu")
    r = dc.dehaze(hazy)
    assert r.J.shape == (1, 3, 24, 24) and r.t_generated.shape == (1, 1, 24, 24)  # optimised at 16 px
    with pytest.raises(ValueError, match="airlight=\\(r, g, b\\)"):
        DoubleDIPDehazer(g, iterations=1, progress=False).dehaze(hazy)
    with pytest.raises(ValueError, match="RGB"):
        DoubleDIPDehazer(g, iterations=1, progress=False).dehaze(hazy[:, :1], airlight=0.8)
    with pytest.raises(ValueError, match="8 x 8"):
        DoubleDIPDehazer(g, iterations=1, progress=False).dehaze(hazy[..., :5, :5], airlight=0.8)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        DoubleDIPDehazer(g, iterations=1, progress=False).dehaze(hazy, airlight=(1.2, 0.5, 0.5))
    with pytest.raises(ValueError, match="airlight="):
        DoubleDIPDehazer(g, airlight="learned")
    assert smoothness_loss(torch.full((1, 1, 9, 9), 0.4)).item() == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------------------------ CompMirror
def test_factor_generator_uses_the_searched_cell_and_is_positive():
    torch.manual_seed(0)
    for up in ["nasdip-denoise", "bilinear", get_genotype("nasdip-sr").cell]:
        gen = FactorGenerator((1, 2), up, widths=(8, 8, 8, 8, 8, 8))
        out = gen()
        assert out.shape == (1, 1, 32, 64) and (out > 0).all()
    cells = FactorGenerator((1, 1), "nasdip-denoise", widths=(8,) * 6).ups
    assert all(c.cell == get_genotype("nasdip-denoise").cell for c in cells)
    with pytest.raises(ValueError, match="widths"):
        FactorGenerator((1, 1), widths=(8, 8))
    layer = upsampling_cell("nasdip-denoise", 8, 4)  # the public drop-in 2x layer
    assert layer(torch.rand(1, 8, 5, 6)).shape == (1, 4, 10, 12)


def test_scale_aligned_error():
    t = torch.rand(5, 4)
    assert scale_aligned_error(3 * t, t) == pytest.approx(0.0, abs=1e-6)
    assert scale_aligned_error(t + 1, t) > 0.1
    with pytest.raises(ValueError, match="shape"):
        scale_aligned_error(t, t.T)


@pytest.mark.parametrize("upsampling", ["nasdip-denoise", "bilinear"])
def test_factorization_misfit_falls(upsampling, data_dir):
    from PIL import Image

    def factor(name, rows, cols):
        im = load_image(data_dir / "compmirror" / name).convert("L").resize((cols, rows), Image.BILINEAR)
        return torch.tensor(np.asarray(im, np.float32) / 255)

    y = factor("lightfield.png", 32, 32) @ factor("tracks_bg.png", 32, 64)  # the demo's protocol, small
    kw = dict(lr=1e-3, widths=(8,) * 6, latent_dropout=0.0, progress=False, device="cpu")
    start = DeepMatrixFactorization(upsampling, iterations=1, **kw).factorize(y, rank=32)
    r = DeepMatrixFactorization(upsampling, iterations=60, **kw).factorize(y, rank=32)
    assert r.T.shape == (32, 32) and r.L.shape == (32, 64) and (r.T > 0).all() and (r.L > 0).all()
    assert np.mean(r.losses[-5:]) < 0.7 * np.mean(r.losses[:5]), (r.losses[:5], r.losses[-5:])
    # measured over 60 iterations: nasdip-denoise 0.93 -> 0.81, bilinear 0.94 -> 0.45
    assert r.misfit < start.misfit - 0.05, (start.misfit, r.misfit)
    with pytest.raises(ValueError, match="rank"):
        DeepMatrixFactorization(upsampling, iterations=1, **kw).factorize(y, rank=0)


# ------------------------------------------------------------------------------------ examples
@pytest.mark.parametrize(
    "script, args, outputs",
    [
        ("cyclegan_generator.py", ["--iterations", "6", "--size", "32"], ["samples_000006.png", "losses.csv", "checkpoint.safetensors"]),
        ("dehazing.py", ["--iterations", "20", "--size", "40"], ["tiananmen_comparison.png", "tiananmen_nasdip_J.png", "tiananmen_unet_t.png"]),
        ("matrix_factorization.py", ["--iterations", "20", "--size", "32"], ["factorization.png", "factorization.json"]),
    ],
)
def test_example_quick_mode_runs(script, args, outputs, tmp_path, data_dir):
    cmd = [sys.executable, str(ROOT / "examples" / script), "--quick", "--data", str(data_dir), "--out", str(tmp_path), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in outputs:
        assert (tmp_path / name).is_file(), (name, sorted(p.name for p in tmp_path.iterdir()))
