"""`nasdip bench`: protocols score like the paper, every protocol runs end to end, runs resume, budgets stop."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nasdip_zoo.bench import runner
from nasdip_zoo.bench.baselines import baseline_names, run_baseline
from nasdip_zoo.bench.calibrate import HELD_OUT_DEFAULT
from nasdip_zoo.bench.presets import TASK_GENOTYPES, get_preset, load_cpu_t_star
from nasdip_zoo.bench.protocols import DenoiseProtocol, InpaintProtocol, SRProtocol, make_protocol
from nasdip_zoo.bench.report import markdown_table, summarize, write_report
from nasdip_zoo.cli import main
from nasdip_zoo.imageio import load_image
from nasdip_zoo.operators import heide_mask
from tests.test_metrics import BM3D_GT, HEIDE, SET5


# ---------------------------------------------------------------- point 1: each protocol's metric


def test_sr_protocol_scores_dips_set5_x4_outputs_as_published(data_dir):
    sr = SRProtocol(scale=4)
    d = data_dir / "set5"
    vals = [sr.score(load_image(d / f"x4_dip_result/{n}_deep_prior.png"), load_image(d / f"x4_GT/{n}_GT.png")) for n in SET5]
    assert np.mean(vals) == pytest.approx(29.90, abs=0.01)


def test_denoise_protocol_scores_dips_sigma25_outputs_as_published(data_dir):
    dn = DenoiseProtocol()
    d = data_dir / "bm3d"
    vals = [dn.score(load_image(d / f"sigma25_dip_result/{k}_deep_prior.png"), load_image(d / f"gt/{v}.png")) for k, v in BM3D_GT.items()]
    assert np.mean(vals) == pytest.approx(31.29, abs=0.01)


def test_inpaint_protocol_scores_dips_heide_outputs_as_published(data_dir):
    ip = InpaintProtocol()
    d = data_dir / "heide_inpainting"
    vals = [ip.score(load_image(d / f"50p_dip_result/{n}_deep_prior.png"), load_image(d / f"gt/{n}.png")) for n in HEIDE]
    assert np.mean(vals) == pytest.approx(33.44, abs=0.01)


# ---------------------------------------------------------------- point 1: degradations


def test_sr_prepare_crops_to_32_and_downscales_with_pil_lanczos(data_dir):
    s = SRProtocol(scale=4).prepare(data_dir / "set5/x4_GT/woman_GT.png", seed=0)  # 228 x 344 -> 224 x 320
    assert s.ground_truth.shape == (320, 224, 3) and s.observation.shape == (80, 56, 3)
    hr = Image.open(data_dir / "set5/x4_GT/woman_GT.png").convert("RGB").crop((2, 12, 226, 332))
    ref = np.asarray(hr.resize((56, 80), Image.LANCZOS), dtype=np.float32) / 255.0
    assert np.array_equal(s.observation, ref)
    small = SRProtocol(scale=8, crop=64).prepare(data_dir / "set5/x4_GT/woman_GT.png", seed=0)
    assert small.observation.shape == (8, 8, 3) and small.scale == 8


def test_denoise_noise_is_seeded_sigma25_and_clipped(data_dir):
    p = DenoiseProtocol(crop=128)
    f = data_dir / "bm3d/gt/kodim03.png"
    a, b, c = p.prepare(f, 0), p.prepare(f, 0), p.prepare(f, 1)
    assert np.array_equal(a.observation, b.observation) and not np.array_equal(a.observation, c.observation)
    assert a.observation.min() >= 0 and a.observation.max() <= 1
    mid = (a.ground_truth > 0.15) & (a.ground_truth < 0.85)  # unclipped pixels
    assert np.std((a.observation - a.ground_truth)[mid]) == pytest.approx(25 / 255, rel=0.05)


def test_inpaint_masks_heide_bernoulli_published(data_dir):
    f = data_dir / "heide_inpainting/gt/boat.png"
    s = InpaintProtocol(crop=64).prepare(f, seed=3)
    assert np.array_equal(s.mask, heide_mask(512, 512)[224:288, 224:288])  # the same mask for every seed
    assert np.array_equal(s.observation[..., 0], s.ground_truth[..., 0] * s.mask)
    full = InpaintProtocol().prepare(f, seed=0)
    assert full.info["kept_fraction"] == pytest.approx(0.5008, abs=5e-4)
    b0, b1 = (InpaintProtocol(masks="bernoulli").prepare(f, seed=k).mask for k in (0, 1))
    assert not np.array_equal(b0, b1) and b0.mean() == pytest.approx(0.5, abs=0.01)
    pub = InpaintProtocol(masks="published").prepare(f, seed=0)
    masked = np.asarray(Image.open(data_dir / "heide_inpainting/50p_masked/boat_masked.png"))
    assert np.array_equal(pub.mask, (masked > 0).astype(np.float32))
    with pytest.raises(FileNotFoundError, match="masks-dir"):
        InpaintProtocol(masks="published", masks_dir=data_dir).prepare(f, seed=0)


def test_protocol_argument_errors():
    with pytest.raises(ValueError, match="multiple of 32"):
        make_protocol("denoise", crop=48)
    with pytest.raises(ValueError, match="2, 4 or 8"):
        make_protocol("sr", scale=3)
    with pytest.raises(ValueError, match="--masks"):
        make_protocol("inpaint", masks="random")
    with pytest.raises(ValueError, match="unknown benchmark task"):
        make_protocol("deblur")


def test_classical_baselines_beat_the_degraded_input(data_dir):
    dn = DenoiseProtocol(crop=64)
    s = dn.prepare(data_dir / "bm3d/gt/kodim03.png", 0)
    noisy = dn.score(s.observation, s.ground_truth)
    for name in ("nlm", "tv"):
        assert dn.score(run_baseline(name, s), s.ground_truth) > noisy + 3
    ip = InpaintProtocol(crop=64)
    s = ip.prepare(data_dir / "heide_inpainting/gt/boat.png", 0)
    assert ip.score(run_baseline("biharmonic", s), s.ground_truth) > ip.score(s.observation, s.ground_truth) + 10
    with pytest.raises(ValueError, match="is for denoise"):
        run_baseline("nlm", s)
    assert "bm3d" not in baseline_names("denoise") or runner.BASELINES["bm3d"]


# ---------------------------------------------------------------- points 1-2: end to end on tiny images


def _tiny_folder(tmp_path: Path, data_dir: Path, src: str, names: list[str], mode: str) -> Path:
    folder = tmp_path / src.replace("/", "_")
    folder.mkdir()
    for n in names:
        im = Image.open(data_dir / src / n).convert(mode)
        w, h = im.size
        im.crop((w // 2 - 32, h // 2 - 32, w // 2 + 32, h // 2 + 32)).save(folder / n)
    return folder


@pytest.mark.parametrize(
    "task,src,names,mode,baseline",
    [
        ("sr", "set5/x4_GT", ["bird_GT.png", "head_GT.png"], "RGB", "bicubic"),
        ("denoise", "bm3d/gt", ["kodim03.png", "image_House256rgb.png"], "RGB", "tv"),
        ("inpaint", "heide_inpainting/gt", ["boat.png", "house.png"], "L", "biharmonic"),
    ],
)
def test_each_protocol_end_to_end_json_table_plot(tmp_path, data_dir, task, src, names, mode, baseline):
    folder = _tiny_folder(tmp_path, data_dir, src, names, mode)
    preset = replace(get_preset("cpu"), width=8, images={})
    protocol = make_protocol(task, crop=None, masks="bernoulli")
    methods = [TASK_GENOTYPES[task][0], "dip-skip", baseline]
    store, jobs = runner.plan_jobs(protocol, folder, methods=methods, preset=preset, seeds=[0], iterations=4,
                                   out=tmp_path / "out", device="cpu")
    summary = runner.run_jobs(jobs, device="cpu", progress=False)
    assert summary == {**summary, "ran": 6, "skipped": 0, "stopped_by_time_budget": False}
    paths = write_report(store.folder)
    data = json.loads((store.folder / "results.json").read_text())
    assert data["protocol"]["task"] == task and data["progress"]["fraction_done"] == 1.0
    assert len(data["records"]) == 6
    for r in data["records"].values():
        assert math.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1 and r["seconds"] >= 0
        if r["kind"] == "dip":
            assert r["t_star"] == r["iterations"] == 4 and len(r["curve"]) == 4
            assert r["oracle_psnr"] == pytest.approx(max(v for v in r["curve"] if v is not None), abs=1e-3)
            assert 1 <= r["oracle_iteration"] <= 4 and r["seconds_per_iteration"] > 0 and r["device"].startswith("cpu")
            assert r["psnr"] == pytest.approx(r["curve"][-1], abs=1e-3)  # headline = the protocol's metric at t*
    md = (store.folder / "results.md").read_text()
    for n in names:
        assert f"| {Path(n).stem} |" in md
    assert "| **mean** |" in md and "ORACLE" in md and "paper (full-size images)" in md
    with Image.open(store.folder / "psnr_vs_iteration.png") as im:
        assert im.format == "PNG" and im.size[0] > 300
    assert [p.name for p in paths] == ["results.json", "results.md", "psnr_vs_iteration.png"]


# ---------------------------------------------------------------- point 2: resume, budget


def _fake_dip(calls: list):
    def fake(method, sample, protocol, *, seed, iterations, width=None, device="auto", curve_every=1, progress=False,
             deadline=None):
        calls.append((method, sample.name, seed))
        v = 20.0 + len(method) % 3 + seed * 0.1
        return {"kind": "dip", "psnr": v, "ssim": 0.5, "oracle_psnr": v + 1, "oracle_iteration": 2, "iterations": iterations,
                "seconds": 10.0 * iterations, "seconds_per_iteration": 10.0, "device": "fake", "curve_every": 1,
                "curve": [v] * iterations}
    return fake


def test_resume_skips_finished_jobs(tmp_path, data_dir, monkeypatch):
    calls: list = []
    monkeypatch.setattr(runner, "run_dip", _fake_dip(calls))
    folder = _tiny_folder(tmp_path, data_dir, "bm3d/gt", ["kodim03.png", "kodim12.png"], "RGB")
    preset = replace(get_preset("cpu"), images={})
    plan = dict(methods=["nasdip-denoise", "dip-skip"], preset=preset, iterations=3, out=tmp_path / "o", device="cpu")
    _, jobs = runner.plan_jobs(DenoiseProtocol(crop=64), folder, seeds=[0, 1], **plan)
    assert runner.run_jobs(jobs, progress=False)["ran"] == 8 and len(calls) == 8
    _, jobs = runner.plan_jobs(DenoiseProtocol(crop=64), folder, seeds=[0, 1], **plan)
    assert runner.run_jobs(jobs, progress=False) == {**runner.run_jobs(jobs, progress=False), "ran": 0, "skipped": 8}
    assert len(calls) == 8
    stored = json.loads((tmp_path / "o/denoise/results.json").read_text())
    stored["protocol"]["metric"] = "an older wording of the same metric"  # documentation, not a setting
    (tmp_path / "o/denoise/results.json").write_text(json.dumps(stored))
    store, jobs = runner.plan_jobs(DenoiseProtocol(crop=64), folder, seeds=[0, 1, 2], **plan)
    assert runner.run_jobs(jobs, progress=False)["ran"] == 4
    assert sorted(c[2] for c in calls[8:]) == [2, 2, 2, 2] and len(store.records) == 12
    with pytest.raises(ValueError, match="another --out"):  # different crop: not the same benchmark
        runner.plan_jobs(DenoiseProtocol(crop=None), folder, seeds=[0], **plan)
    with pytest.raises(ValueError, match="t\\* = 3"):  # a different stopping point is not resumed silently
        _, jobs = runner.plan_jobs(DenoiseProtocol(crop=64), folder, seeds=[0], **{**plan, "iterations": 5})
        runner.run_jobs(jobs, progress=False)


def test_time_budget_stops_starting_jobs_and_records_the_fraction(tmp_path, data_dir, monkeypatch):
    calls: list = []
    monkeypatch.setattr(runner, "run_dip", _fake_dip(calls))
    folder = _tiny_folder(tmp_path, data_dir, "bm3d/gt", ["kodim03.png"], "RGB")
    store, jobs = runner.plan_jobs(DenoiseProtocol(crop=64), folder, methods=["dip-skip"], preset=replace(get_preset("cpu"), images={}),
                                   seeds=[0, 1, 2, 3], iterations=3, out=tmp_path / "o", device="cpu")
    s = runner.run_jobs(jobs, time_budget=5.0, progress=False)  # the first job reports 30 s: no second one fits
    assert s["ran"] == 1 and s["stopped_by_time_budget"]
    prog = json.loads(store.path.read_text())["progress"]
    assert prog == {**prog, "jobs_done": 1, "jobs_planned": 4, "fraction_done": 0.25, "stopped_by_time_budget": True}
    assert "stopped by the time budget" in markdown_table(json.loads(store.path.read_text()))


def test_time_budget_interrupts_a_dip_job_running_at_the_deadline(tmp_path, data_dir):
    folder = _tiny_folder(tmp_path, data_dir, "bm3d/gt", ["kodim03.png"], "RGB")
    preset = replace(get_preset("cpu"), width=8, images={})
    store, jobs = runner.plan_jobs(DenoiseProtocol(), folder, methods=["dip-skip", "nlm"], preset=preset, seeds=[0],
                                   iterations=100_000, out=tmp_path / "o", device="cpu")
    s = runner.run_jobs(jobs, time_budget=1.0, progress=False)  # no estimate yet: it starts, and is stopped
    assert s["ran"] == 0 and s["stopped_by_time_budget"] and s["seconds"] < 30
    assert json.loads(store.path.read_text())["records"] == {}


def test_summary_pairs_methods_with_dip_skip_per_image_and_seed():
    recs = {}
    for m, base in (("dip-skip", 30.0), ("nasdip-denoise", 30.5)):
        for im, d in (("a", 0.0), ("b", 1.0)):
            for seed in (0, 1, 2):
                recs[f"{m}|{im}|{seed}"] = {"method": m, "image": im, "seed": seed, "kind": "dip", "psnr": base + d + 0.1 * seed,
                                            "ssim": 0.8, "seconds": 1.0, "oracle_psnr": 40.0, "oracle_iteration": 5,
                                            "seconds_per_iteration": 0.1, "t_star": 9, "device": "cpu"}
    recs["dip-skip|b|2"]["psnr"] = 32.5  # nasdip loses this one pair (31.7 < 32.5)
    s = summarize({"records": recs})
    assert s["nasdip-denoise"]["wins_vs_dip_skip"] == "5/6"
    assert s["nasdip-denoise"]["vs_dip_skip"] == pytest.approx((0.5 * 5 - 0.8) / 6)
    assert s["dip-skip"]["seed_std"] == pytest.approx(np.std([30.5, 30.6, 31.35], ddof=1))


# ---------------------------------------------------------------- point 3: presets, CLI


def test_cpu_preset_t_star_comes_from_held_out_images_within_its_caps():
    table = load_cpu_t_star()
    preset = get_preset("cpu")
    tests = {n for names in preset.images.values() for n in names}
    for task, genotypes in TASK_GENOTYPES.items():
        key = "sr_x4" if task == "sr" else task
        for m in genotypes:
            entry = table["t_star"][key][m]
            assert not set(entry["held_out"]) & tests and set(entry["held_out"]) <= set(HELD_OUT_DEFAULT)
            assert entry["crop"] == preset.crop and entry["width"] == preset.width
            t, source = preset.t_star(m, task, 4)
            assert 1 <= t <= preset.max_iterations[task] and "held-out" in source
            assert t != get_preset("full").t_star(m, task)[0]  # never the paper's full-size t*
    for scale in (2, 8):  # x2/x8 are calibrated for the cpu preset's default SR methods only
        for m in ("nasdip-sr", "dip-skip"):
            entry = table["t_star"][f"sr_x{scale}"][m]
            assert entry["crop"] == preset.crop and set(entry["held_out"]) <= set(HELD_OUT_DEFAULT)
            assert 1 <= preset.t_star(m, "sr", scale)[0] <= preset.max_iterations["sr"]
    with pytest.raises(ValueError, match="--iterations"):
        preset.t_star("nasdip-sr-cell-only", "sr", 8)


def test_cli_classical_only_run_and_errors(tmp_path, data_dir, capsys):
    folder = _tiny_folder(tmp_path, data_dir, "bm3d/gt", ["kodim03.png", "kodim12.png"], "RGB")
    out = tmp_path / "res"
    argv = ["bench", "denoise", "--data", str(folder), "--preset", "cpu", "--methods", "nlm", "tv", "--seeds", "0", "1",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert "denoise: 8/8 jobs done (100%)" in capsys.readouterr().out
    assert main(argv) == 0 and len(json.loads((out / "denoise/results.json").read_text())["records"]) == 8
    assert main(["bench", "denoise", "--data", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["bench", "sr", "--data", str(folder), "--images", "kodim99", "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["bench", "inpaint", "--data", str(folder), "--methods", "bicubic", "--out", str(out)]) == 2
    assert "sr baseline" in capsys.readouterr().err


def test_cli_all_runs_three_tasks_in_one_budget(tmp_path, data_dir, capsys):
    root = tmp_path / "data"
    for src, names, mode in (("set5/x4_GT", ["bird_GT.png"], "RGB"), ("bm3d/gt", ["kodim03.png"], "RGB"),
                             ("heide_inpainting/gt", ["boat.png"], "L")):
        folder = _tiny_folder(tmp_path, data_dir, src, names, mode)
        (root / src).parent.mkdir(parents=True, exist_ok=True)
        folder.rename(root / src)
    out = tmp_path / "res"
    argv = ["bench", "all", "--data", str(root), "--preset", "cpu", "--methods", "bicubic", "tv", "biharmonic",
            "--seeds", "0", "--out", str(out), "--time-budget", "600", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for key in ("sr_x4", "denoise", "inpaint"):
        assert f"{key}: 1/1 jobs done (100%)" in printed
        data = json.loads((out / key / "results.json").read_text())
        assert data["progress"]["time_budget_s"] == 600 and data["runs"][-1]["time_budget_s"] == 600
        assert data["runs"][-1]["command"].startswith("nasdip bench all --data")
    with pytest.raises(SystemExit) as e:
        main(["bench", "--help"])
    assert e.value.code == 0
