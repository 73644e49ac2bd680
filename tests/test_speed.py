"""Issue 7: fast paths compute what eager float32 computes, restore_many equals separate runs, Ray scale-out."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from nasdip_zoo.fastpath import DIPStep, FastPath, resolve_fast
from nasdip_zoo.restore import DIPRestorer
from nasdip_zoo.zoo import get_genotype

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="CUDA-only fast path (exercised by benchmarks/gpu_check.sh)")
TOL_DB = 0.05  # float32 paths: the tolerance
TOL_DB_REDUCED = 0.5  # bf16/fp16 autocast on a 40-iteration tiny problem (documented in the README)


def _tiny(name: str = "nasdip-sr"):
    return get_genotype(name).replace(channels=8, skip_channels=8)


def _problem(size: int = 32, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(1, 3, size, size, generator=g) * 0.5 + 0.25
    noisy = (clean + 0.1 * torch.randn(1, 3, size, size, generator=g)).clamp(0, 1)
    return clean, noisy


def _run(fast, device="cpu", iterations=40, genotype=None, operator=None, **kw):
    clean, noisy = _problem()
    r = DIPRestorer(genotype or _tiny(), iterations=iterations, seed=0, device=device, progress=False, fast=fast, ema=0.9)
    return r.restore(noisy.to(device), operator, ground_truth=clean, **kw)


@pytest.fixture(scope="module")
def eager_cpu():
    return _run("off")


# ---------------------------------------------------------------------------------------------- config


def test_labels_round_trip_and_bad_values_are_explained():
    for label in ["eager", "cl", "cl+fused+sync25", "compile:max-autotune+bf16+foreach+graphs", "loop+sync5+up+ip"]:
        fp = FastPath.from_label(label, "cuda")
        assert FastPath.from_label(fp.label, "cuda") == fp
    assert FastPath.from_label("auto", "cpu") == FastPath.auto("cpu")
    with pytest.raises(ValueError, match="unknown part 'turbo'"):
        FastPath.from_label("cl+turbo")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_fast(FastPath(autocast="bf16"), "cpu")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        DIPRestorer(_tiny(), device="cpu", fast=FastPath(cuda_graphs=True))
    with pytest.raises(ValueError, match="sync_every"):
        FastPath(sync_every=0)
    with pytest.raises(ValueError, match="'auto', 'off'"):
        DIPRestorer(_tiny(), device="cpu", fast="fastest")
    assert FastPath.auto("cpu").autocast is None and FastPath.auto("cuda").autocast is None  # defaults keep float32
    # CUDA graphs are opt-in until measured on a GPU; the default there is cl+up+ip+fused(+sync25)
    assert not FastPath.auto("cuda", iterations=50).cuda_graphs and not FastPath.auto("cuda", iterations=5000).cuda_graphs
    assert FastPath.auto("cuda", iterations=5000).adam == "fused"
    assert FastPath.auto("cpu", iterations=50).sync_every == 1 and FastPath.auto("cpu", iterations=3000).sync_every == 25
    from nasdip_zoo.network import build_nasdip

    inpaint = build_nasdip(get_genotype("nasdip-inpaint").replace(channels=8, skip_channels=8), 8, 1)
    assert not FastPath.auto("cpu", net=inpaint).channels_last  # measured slower with transposed convolutions
    assert FastPath.auto("cpu", net=build_nasdip(_tiny(), 8, 3)).channels_last


# ---------------------------------------------------------------------------------------------- agreement (CPU)


@pytest.mark.parametrize("label", ["cl", "loop", "foreach", "fused", "sync5", "ip", "up", "cl+fused+sync7+up+ip"])
def test_cpu_fast_paths_agree_with_eager(label, eager_cpu):
    res = _run(FastPath.from_label(label))
    assert res.settings["fast"] == label
    assert len(res.losses) == len(eager_cpu.losses) == 40 and res.rollbacks == eager_cpu.rollbacks == 0
    assert abs(res.psnr - eager_cpu.psnr) < TOL_DB
    np.testing.assert_allclose(res.losses, eager_cpu.losses, rtol=3e-2)  # Adam amplifies rounding
    if label in ("sync5", "ip"):
        # deferring the host read, or in-place activations, change no computation: every number is bit-identical
        assert res.losses == eager_cpu.losses and res.psnrs == pytest.approx(eager_cpu.psnrs, rel=1e-12)
        assert res.oracle_iteration == eager_cpu.oracle_iteration and res.oracle_psnr == pytest.approx(eager_cpu.oracle_psnr, rel=1e-12)
        assert torch.equal(res.image, eager_cpu.image) and torch.equal(res.ema_image, eager_cpu.ema_image)


def test_auto_is_what_the_restorer_runs_by_default(eager_cpu):
    res = _run("auto")
    assert res.settings["fast"] == FastPath.auto("cpu", iterations=40).label == "cl+up+ip"
    assert abs(res.psnr - eager_cpu.psnr) < TOL_DB


def _nan_once_operator(at: int):
    calls = {"n": 0}

    def A(x):
        calls["n"] += 1
        return x * float("nan") if calls["n"] == at else x

    return A


@pytest.mark.parametrize("label", ["eager", "sync5"])
def test_nan_is_rolled_back_with_deferred_checks_too(label):
    res = _run(FastPath.from_label(label), iterations=20, operator=_nan_once_operator(8))
    assert res.rollbacks == 1 and len(res.losses) == 20
    assert math.isnan(res.losses[7]) and all(math.isfinite(v) for v in res.losses[:7] + res.losses[10:])
    assert math.isnan(res.psnrs[7]) and math.isfinite(res.psnrs[-1])
    assert torch.isfinite(res.image).all()
    clean = _problem()[0]
    assert abs(res.psnr - _run(FastPath.from_label(label), iterations=20).psnr) < 1.5  # recovered, not wrecked
    assert res.psnr > 10.0 and clean.shape == res.image.shape


def test_deferred_checkpoint_resume_matches_one_run(tmp_path):
    full = _run(FastPath(sync_every=4), iterations=12)
    ck = tmp_path / "run.safetensors"
    part = _run(FastPath(sync_every=4), iterations=12, checkpoint=ck, checkpoint_every=6,
                callback=None)
    assert part.losses == full.losses
    again = _run(FastPath(sync_every=4), iterations=12, checkpoint=ck)  # finished: nothing left to run
    assert again.losses == full.losses


def test_compile_falls_back_to_eager_with_one_warning(monkeypatch, eager_cpu):
    import nasdip_zoo.fastpath as fpmod

    def broken(*a, **k):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(fpmod.torch, "compile", broken)
    fpmod._WARNED.clear()
    with pytest.warns(RuntimeWarning, match="torch.compile is unavailable"):
        res = _run(FastPath(compile=True))
    assert res.losses == eager_cpu.losses  # exactly the eager computation

    def fails_when_run(module, **k):
        def call(x):
            raise RuntimeError("inductor exploded")

        return call

    monkeypatch.setattr(fpmod.torch, "compile", fails_when_run)
    fpmod._WARNED.clear()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = _run(FastPath(compile=True))
    assert sum("torch.compile failed" in str(w.message) for w in rec) == 1
    assert res.losses == eager_cpu.losses


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_separable_upsampling_is_torchs_interpolation(mode):
    import torch.nn.functional as F

    from nasdip_zoo.fastpath import SeparableUpsample2x, separable_upsampling
    from nasdip_zoo.network import build_nasdip

    for shape, cl in [((1, 3, 5, 7), False), ((2, 4, 1, 1), False), ((1, 2, 2, 3), False), ((1, 8, 16, 16), False),
                      ((2, 6, 5, 7), True)]:  # borders clamp like torch's; channels-last stays channels-last
        x = torch.randn(*shape, dtype=torch.float64)
        x = (x.contiguous(memory_format=torch.channels_last) if cl else x).requires_grad_()
        a = F.interpolate(x, scale_factor=2, mode=mode, align_corners=False)
        b = SeparableUpsample2x(mode)(x)
        torch.testing.assert_close(b, a, atol=1e-14, rtol=0)
        assert b.is_contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)
        g = torch.randn_like(a)
        torch.testing.assert_close(torch.autograd.grad(b, x, g)[0], torch.autograd.grad(a, x, g)[0], atol=1e-13, rtol=0)
    x3 = torch.randn(3, 5, 7, dtype=torch.float64, requires_grad=True)  # an unbatched C x H x W image too
    torch.testing.assert_close(SeparableUpsample2x(mode)(x3), F.interpolate(x3[None], scale_factor=2, mode=mode)[0],
                               atol=1e-14, rtol=0)
    assert torch.autograd.gradcheck(SeparableUpsample2x(mode), (torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True),))
    name = "nasdip-sr" if mode == "bicubic" else "dip-skip"
    net = build_nasdip(get_genotype(name).replace(channels=8, skip_channels=8 if mode == "bicubic" else 4), 8, 3).double()
    z = torch.rand(1, 8, 32, 32, dtype=torch.float64)
    ref = net(z)
    assert separable_upsampling(net) >= 5 and separable_upsampling(net) == 0  # swapped once, in place
    torch.testing.assert_close(net(z), ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name,skip", [("nasdip-sr", 8), ("nasdip-denoise", 8), ("nasdip-inpaint", 8), ("dip-skip", 4)])
def test_inplace_activations_are_bit_identical(name, skip):
    import copy

    from nasdip_zoo.fastpath import inplace_activations
    from nasdip_zoo.network import build_nasdip

    torch.manual_seed(0)
    a = build_nasdip(get_genotype(name).replace(channels=8, skip_channels=skip), 8, 3)
    b = copy.deepcopy(a)
    assert inplace_activations(b) > 20 and inplace_activations(b) == 0
    z = torch.rand(1, 8, 32, 32)
    ya, yb = a(z), b(z)
    g = torch.randn_like(ya)
    assert torch.equal(ya, yb)
    for x, y in zip(torch.autograd.grad(ya, list(a.parameters()), g), torch.autograd.grad(yb, list(b.parameters()), g)):
        assert torch.equal(x, y)


def test_step_snapshot_restore_is_exact():
    clean, noisy = _problem()
    net = __import__("nasdip_zoo.network", fromlist=["build_nasdip"]).build_nasdip(_tiny(), 32, 3)
    step = DIPStep(net, lambda x: x, noisy, 0.01, FastPath(adam="fused"))
    z = torch.rand(1, 32, 32, 32)
    snap = step.snapshot()
    out1, loss1 = step(z)
    step(z)
    step.restore(snap)
    out2, loss2 = step(z)
    assert torch.equal(out1, out2) and float(loss1.detach()) == float(loss2.detach())


# ---------------------------------------------------------------------------------------------- CUDA-only


def _cuda_run(label, iterations=40):
    return _run(FastPath.from_label(label, "cuda"), device="cuda", iterations=iterations)


@needs_cuda
@pytest.mark.parametrize("label,tol", [("cl", TOL_DB), ("fused", TOL_DB), ("cl+fused+sync5", TOL_DB),
                                       ("cl+fused+sync5+graphs", TOL_DB), ("auto", TOL_DB),
                                       ("bf16", TOL_DB_REDUCED), ("fp16", TOL_DB_REDUCED),
                                       ("cl+bf16+fused+sync5+graphs", TOL_DB_REDUCED)])
def test_cuda_fast_paths_agree_with_eager(label, tol):
    ref = _cuda_run("eager")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a silent fallback (e.g. failed graph capture) fails the test
        res = _cuda_run(label)
    assert len(res.losses) == 40
    assert abs(res.psnr - ref.psnr) < tol, (label, res.psnr, ref.psnr)


@needs_cuda
def test_cuda_compile_agrees_with_eager():
    ref = _cuda_run("eager", iterations=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = _cuda_run("cl+compile+fused+sync5", iterations=20)
    assert abs(res.psnr - ref.psnr) < TOL_DB


# ---------------------------------------------------------------------------------------------- restore_many


def _many_inputs(n=3, size=32):
    g = torch.Generator().manual_seed(11)
    clean = [torch.rand(1, 3, size, size, generator=g) for _ in range(n)]
    masks = [(torch.rand(1, 1, size, size, generator=g) > 0.5).float() for _ in range(n)]
    return clean, masks


@pytest.mark.parametrize("task", ["denoise", "inpaint"])
def test_restore_many_equals_separate_runs(task):
    clean, masks = _many_inputs()
    seeds = [5, 6, 7]
    kw = {"masks": [m[0] for m in masks]} if task == "inpaint" else {}
    for iters, psnr_tol in ((1, 1e-4), (6, TOL_DB)):
        r = DIPRestorer(_tiny("nasdip-denoise"), iterations=iters, device="cpu", progress=False, ema=0.9)
        many = r.restore_many(clean, task, ground_truths=clean, seeds=seeds, **kw)
        assert len(many) == 3
        for i, res in enumerate(many):
            one = DIPRestorer(_tiny("nasdip-denoise"), iterations=iters, seed=seeds[i], device="cpu", progress=False,
                              ema=0.9).restore(clean[i], task, mask=masks[i][0] if task == "inpaint" else None,
                                               ground_truth=clean[i])
            assert res.settings["seed"] == seeds[i] and len(res.losses) == iters
            np.testing.assert_allclose(res.losses, one.losses, rtol=1e-2)
            assert abs(res.psnr - one.psnr) < psnr_tol
            assert res.oracle_iteration == one.oracle_iteration
            if iters == 1:  # before Adam amplifies rounding, the outputs agree to float precision
                torch.testing.assert_close(res.image, one.image, atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(res.ema_image, one.ema_image, atol=1e-5, rtol=1e-5)
        if iters == 1:
            assert (many[0].image - many[1].image).abs().max() > 1e-3  # own seeds: really independent networks


def test_restore_many_resumes_bit_exact_from_a_checkpoint(tmp_path, monkeypatch):
    """An interrupted batch (here: stopped by a smaller iteration count) resumes to the straight run's numbers."""
    from nasdip_zoo.many import StackedDIP

    calls = []
    fb = StackedDIP.forward_backward
    monkeypatch.setattr(StackedDIP, "forward_backward", lambda self, *a: (calls.append(1), fb(self, *a))[1])
    clean, _ = _many_inputs(n=2, size=16)
    kw = dict(device="cpu", progress=False, ema=0.9, seed=3)
    straight = DIPRestorer(_tiny("nasdip-denoise"), iterations=7, **kw).restore_many(clean, ground_truths=clean)
    ckpt = tmp_path / "many.safetensors"
    first = DIPRestorer(_tiny("nasdip-denoise"), iterations=4, **kw).restore_many(
        clean, ground_truths=clean, checkpoint=ckpt, checkpoint_every=2)
    assert ckpt.exists() and (tmp_path / "many.safetensors.json").exists() and first[0].iterations == 4
    calls.clear()
    resumed = DIPRestorer(_tiny("nasdip-denoise"), iterations=7, **kw).restore_many(
        clean, ground_truths=clean, checkpoint=ckpt, checkpoint_every=2)
    assert len(calls) == 3  # only the 3 missing iterations ran
    for a, b in zip(resumed, straight):
        assert a.iterations == 7 and a.losses == b.losses and a.ema_psnrs == b.ema_psnrs
        assert torch.equal(a.image, b.image) and torch.equal(a.ema_image, b.ema_image)
        assert a.oracle_iteration == b.oracle_iteration and torch.equal(a.oracle_image, b.oracle_image)
    # another batch (other seeds), a single-image checkpoint, or fewer iterations than done: refused
    with pytest.raises(ValueError, match="different run .*seeds"):
        DIPRestorer(_tiny("nasdip-denoise"), iterations=7, **kw).restore_many(clean, seeds=[8, 9], checkpoint=ckpt)
    with pytest.raises(ValueError, match="already run 7 iterations"):
        DIPRestorer(_tiny("nasdip-denoise"), iterations=5, **kw).restore_many(clean, checkpoint=ckpt)
    one = tmp_path / "one.safetensors"
    DIPRestorer(_tiny("nasdip-denoise"), iterations=1, **kw).restore(clean[0], checkpoint=one)
    with pytest.raises(ValueError, match="not a nasdip restore_many checkpoint"):
        DIPRestorer(_tiny("nasdip-denoise"), iterations=7, **kw).restore_many(clean, checkpoint=one)


def test_restore_many_rejects_mixed_sizes_and_wrong_lengths():
    r = DIPRestorer(_tiny(), iterations=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="one size"):
        r.restore_many([torch.rand(1, 3, 32, 32), torch.rand(1, 3, 16, 16)])
    with pytest.raises(ValueError, match="seeds has 1 entries for 2 images"):
        r.restore_many([torch.rand(1, 3, 32, 32)] * 2, seeds=[1])


# ---------------------------------------------------------------------------------------------- scale-out


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the module; workers import this checkout."""
    ray = pytest.importorskip("ray")
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": root, "OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


def _folder(tmp_path, n=2, size=16):
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(src / f"img{i}.png")
    geno = tmp_path / "tiny.json"
    _tiny("nasdip-denoise").save(geno)
    return src, geno


def _records(folder):
    import json

    data = json.loads((folder / "restore-results.json").read_text())
    return {k: {f: v for f, v in r.items() if f != "seconds"} for k, r in data["records"].items()}


def test_restore_folder_ray_writes_what_local_writes_and_resumes(tmp_path, local_ray):
    from PIL import Image

    from nasdip_zoo.folder import restore_folder

    src, geno = _folder(tmp_path)
    kw = dict(genotype=str(geno), iterations=3, device="cpu", fast="off", progress=False)
    loc = restore_folder("denoise", src, tmp_path / "local", **kw)
    ray_out = tmp_path / "ray"
    (ray_out).mkdir()
    rem = restore_folder("denoise", src, ray_out, executor="ray", **kw)
    assert loc["ran"] == rem["ran"] == 2
    assert _records(tmp_path / "local") == _records(ray_out) and len(_records(ray_out)) == 2
    for name in ("img0.png", "img1.png"):
        a = np.asarray(Image.open(tmp_path / "local" / name))
        b = np.asarray(Image.open(ray_out / name))
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    again = restore_folder("denoise", src, ray_out, executor="ray", **kw)  # resume: nothing left
    assert again["ran"] == 0 and again["skipped"] == 2
    (ray_out / "img1.png").unlink()  # a lost output is redone
    assert restore_folder("denoise", src, ray_out, executor="ray", **kw)["ran"] == 1
    with pytest.raises(ValueError, match="different run"):
        restore_folder("denoise", src, ray_out, **dict(kw, iterations=4))


def test_restore_cli_folder_mode(tmp_path, capsys):
    from nasdip_zoo.cli import main

    src, geno = _folder(tmp_path, n=1)
    out = tmp_path / "out"
    rc = main(["restore", "denoise", str(src), "-o", str(out), "--genotype", str(geno), "--iterations", "2",
               "--device", "cpu", "--fast", "sync2", "--quiet"])
    assert rc == 0 and (out / "img0.png").is_file()
    assert _records(out)[f"{geno}|img0.png"]["fast"] == "sync2"
    rc = main(["restore", "denoise", str(src), "-o", str(out), "--fast", "warp9", "--quiet"])
    assert rc == 2 and "warp9" in capsys.readouterr().err


def test_bench_ray_executor_writes_the_local_results(tmp_path, local_ray):
    import json
    from dataclasses import replace

    from PIL import Image

    from nasdip_zoo.bench import runner
    from nasdip_zoo.bench.presets import get_preset
    from nasdip_zoo.bench.protocols import DenoiseProtocol

    folder = tmp_path / "gt"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(folder / f"im{i}.png")
    preset = replace(get_preset("cpu"), images={}, width=8)
    out = {}
    for ex in ("local", "ray"):
        store, jobs = runner.plan_jobs(DenoiseProtocol(crop=64), folder, methods=["dip-skip"], preset=preset, seeds=[0],
                                       iterations=3, out=tmp_path / ex, device="cpu")
        s = runner.run_jobs(jobs, device="cpu", progress=False, executor=ex)
        assert s["ran"] == 2 and not s["stopped_by_time_budget"]
        data = json.loads(store.path.read_text())
        assert data["progress"]["jobs_done"] == 2
        out[ex] = {k: {f: v for f, v in r.items() if f not in ("seconds", "seconds_per_iteration")}
                   for k, r in data["records"].items()}
        again = runner.run_jobs(runner.plan_jobs(DenoiseProtocol(crop=64), folder, methods=["dip-skip"], preset=preset,
                                                 seeds=[0], iterations=3, out=tmp_path / ex, device="cpu")[1],
                                device="cpu", progress=False, executor=ex)
        assert again["ran"] == 0 and again["skipped"] == 2  # resume
    assert out["ray"].keys() == out["local"].keys() and len(out["ray"]) == 2
    for k in out["local"]:
        loc, rem = out["local"][k], out["ray"][k]
        assert loc["psnr"] == pytest.approx(rem["psnr"], abs=1e-3) and loc["curve"] == pytest.approx(rem["curve"], abs=1e-3)
        assert {f: v for f, v in loc.items() if f not in ("psnr", "ssim", "curve", "oracle_psnr")} == \
            {f: v for f, v in rem.items() if f not in ("psnr", "ssim", "curve", "oracle_psnr")}


def test_channel_sum_keeps_channels_last_and_its_numbers():
    """The 'add every N channels' cell sums on the NHWC view: same sums bit for bit, no NCHW copy."""
    from nasdip_zoo.cells import ChannelSum

    torch.manual_seed(0)
    m = ChannelSum(16, 8, 3, 1, 4).double()
    x = torch.randn(2, 16, 9, 7, dtype=torch.float64, requires_grad=True)
    xc = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    summed = {}
    m.conv.register_forward_hook(lambda mod, inp, out: summed.setdefault(inp[0].is_contiguous(), inp[0]))
    a, b = m(x), m(xc)
    assert torch.equal(summed[True], summed[False])  # the chunk sums themselves are bit-identical
    assert summed[False].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(b, a, atol=1e-12, rtol=0)
    g = torch.randn_like(a)
    gx, gxc = torch.autograd.grad(a, x, g)[0], torch.autograd.grad(b, xc, g)[0]
    torch.testing.assert_close(gxc, gx, atol=1e-12, rtol=0)
    assert gxc.is_contiguous(memory_format=torch.channels_last)


def test_separable_upsampling_output_is_not_a_view():
    """An in-place activation after the upsample must not trigger autograd's copy-on-write of a view."""
    from nasdip_zoo.fastpath import SeparableUpsample2x

    for cl in (False, True):
        x = torch.randn(1, 4, 6, 5)
        x = (x.contiguous(memory_format=torch.channels_last) if cl else x).requires_grad_()
        y = SeparableUpsample2x("bicubic")(x)
        assert y._base is None
        torch.nn.functional.leaky_relu_(y, 0.2).sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape


def test_speed_script_quick_report(tmp_path):
    """benchmarks/speed.py --quick writes a report whose rows carry what issue 7 asks (no timing asserted)."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"
    spec = importlib.util.spec_from_file_location("nasdip_speed_script", path)
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    assert speed.main(["--quick", "--device", "cpu", "--out", str(tmp_path), "--tag", "t"]) == 0
    (report_file,) = tmp_path.glob("speed-cpu-*-t.json")
    report = json.loads(report_file.read_text())
    assert set(report["conv_peak_flops"]) == {"fp32"} and report["conv_peak_flops"]["fp32"] > 1e9
    rows = {r["variant"]: r for r in report["rows"]}
    assert list(rows) == ["eager", "cl", "sync25"] and rows["eager"]["speedup_vs_eager"] == 1.0
    for r in rows.values():
        assert "error" not in r and r["ms_per_iter"] > 0 and len(r["ms_all"]) == 3
        assert r["flops"] > 1e8 and 0 < r["fraction_of_peak_pct"] < 1000
    assert "| % of peak |" in (tmp_path / report_file.name.replace(".json", ".md")).read_text()
