"""The ``nasdip`` CLI end to end, through a subprocess: restore (3 tasks), checkpoint resume, demo,
and every bad-input path (one line on stderr, exit code 2, no output file left behind)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nasdip_zoo.genotype import Connections
from nasdip_zoo.imageio import load_image
from nasdip_zoo.zoo import get_genotype

REPO = Path(__file__).resolve().parents[1]
FAST = ["--quiet", "--threads", "1"]


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "nasdip_zoo.cli", *map(str, args)]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(*args), capture_output=True, text=True, cwd=REPO, timeout=300)


@pytest.fixture(scope="module")
def work(tmp_path_factory, data_dir):
    """A small real crop, its mask, an LR version and a tiny genotype JSON, in a temp folder."""
    d = tmp_path_factory.mktemp("cli")
    img = load_image(data_dir / "bm3d/gt/kodim03.png").crop((300, 200, 332, 232))
    img.save(d / "in.png")
    mask = (np.random.default_rng(0).random((32, 32)) < 0.5).astype(np.uint8) * 255
    Image.fromarray(mask).save(d / "mask.png")
    Image.fromarray(mask[:16]).save(d / "mask_small.png")
    Image.fromarray(np.asarray(img) * (mask[..., None] > 0)).save(d / "holes.png")
    (d / "not_an_image.png").write_text("this is text")
    g = get_genotype("nasdip-denoise").replace(channels=8, skip_channels=8, depth=3, connections=Connections(offsets=(0,)))
    g.save(d / "tiny.json")
    return d


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.mark.parametrize(
    "task,extra,size",
    [("denoise", [], (32, 32)), ("sr", ["--scale", "2"], (64, 64)), ("inpaint", ["--mask", "mask.png"], (32, 32))],
)
def test_restore_each_task(work, tmp_path, task, extra, size):
    out = tmp_path / f"{task}.png"
    inp = "holes.png" if task == "inpaint" else "in.png"
    extra = [str(work / e) if e.endswith(".png") else e for e in extra]
    r = run("restore", task, work / inp, "-o", out, "--genotype", work / "tiny.json", "--iterations", "4", *extra, *FAST)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out)
    res = load_image(out)
    assert res.size == size and res.mode == "RGB"
    assert _files(tmp_path) == {f"{task}.png"}


def test_restore_checkpoint_resumes_to_the_same_image(work, tmp_path):
    common = ["--genotype", work / "tiny.json", "--iterations", "6", "--checkpoint", tmp_path / "ck.safetensors", *FAST]
    r1 = run("restore", "denoise", work / "in.png", "-o", tmp_path / "a.png", *common, "--checkpoint-every", "3")
    assert r1.returncode == 0, r1.stderr
    assert {"ck.safetensors", "ck.safetensors.json"} <= _files(tmp_path)
    r2 = run("restore", "denoise", work / "in.png", "-o", tmp_path / "b.png", *common)  # resumes at the end
    assert r2.returncode == 0, r2.stderr
    assert np.array_equal(np.asarray(load_image(tmp_path / "a.png")), np.asarray(load_image(tmp_path / "b.png")))


def test_demo_writes_side_by_side_png(tmp_path):
    out = tmp_path / "demo.png"
    r = run("demo", "-o", out, "--iterations", "3", *FAST)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out)
    fig = load_image(out)
    assert fig.width > 3 * 96 * 2 and fig.height > 96 * 2  # three 2x-zoomed panels plus labels
    assert _files(tmp_path) == {"demo.png"}


def test_help_lists_the_commands():
    r = run("--help")
    assert r.returncode == 0 and all(c in r.stdout for c in ("genotypes", "restore", "demo"))


ERRORS = {
    "missing input": ["restore", "denoise", "{w}/nope.png", "-o", "{o}/x.png"],
    "not an image": ["restore", "denoise", "{w}/not_an_image.png", "-o", "{o}/x.png"],
    "mask wrong size": ["restore", "inpaint", "{w}/holes.png", "--mask", "{w}/mask_small.png", "-o", "{o}/x.png"],
    "mask missing file": ["restore", "inpaint", "{w}/holes.png", "--mask", "{w}/nomask.png", "-o", "{o}/x.png"],
    "inpaint without mask": ["restore", "inpaint", "{w}/holes.png", "-o", "{o}/x.png"],
    "unknown genotype": ["restore", "denoise", "{w}/in.png", "--genotype", "nasdip-nope", "-o", "{o}/x.png"],
    "genotype file missing": ["restore", "denoise", "{w}/in.png", "--genotype", "{w}/none.json", "-o", "{o}/x.png"],
    "scale 3": ["restore", "sr", "{w}/in.png", "--scale", "3", "-o", "{o}/x.png"],
    "sr without scale": ["restore", "sr", "{w}/in.png", "-o", "{o}/x.png"],
    "output folder missing": ["restore", "denoise", "{w}/in.png", "-o", "{o}/no/such/dir/x.png"],
    "output is a folder": ["restore", "denoise", "{w}/in.png", "-o", "{o}"],
    "output extension": ["restore", "denoise", "{w}/in.png", "-o", "{o}/x.notanimage"],
    "bad iterations": ["restore", "denoise", "{w}/in.png", "-o", "{o}/x.png", "--iterations", "0"],
    "bad device": ["restore", "denoise", "{w}/in.png", "-o", "{o}/x.png", "--device", "banana"],
    "unknown task": ["restore", "deblur", "{w}/in.png", "-o", "{o}/x.png"],
    "demo output folder missing": ["demo", "-o", "{o}/no/dir/demo.png"],
}


def _run_all(jobs: dict[str, list[str]], at_once: int = 3) -> dict[str, tuple[int, str, str]]:
    """Run CLI invocations a few at a time (each is a fresh interpreter, mostly importing torch)."""
    results, names = {}, list(jobs)
    for i in range(0, len(names), at_once):
        batch = {n: subprocess.Popen(_cmd(*jobs[n]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
                 for n in names[i : i + at_once]}
        for n, p in batch.items():
            out, err = p.communicate(timeout=300)
            results[n] = (p.returncode, out, err)
    return results


def test_every_bad_input_is_one_line_and_exit_2(work, tmp_path):
    folders, jobs = {}, {}
    for name, args in ERRORS.items():
        folders[name] = tmp_path / name.replace(" ", "_")
        folders[name].mkdir()
        jobs[name] = [a.format(w=work, o=folders[name]) for a in args] + FAST
    for name, (code, stdout, stderr) in _run_all(jobs).items():
        out = folders[name]
        assert code == 2, (name, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, (name, stderr)
        assert lines[0].startswith("nasdip") and "error" in lines[0], (name, stderr)
        assert "Traceback" not in stderr and stdout == ""
        assert list(out.rglob("*")) == [], (name, list(out.rglob("*")))  # nothing written, not even a temp file
