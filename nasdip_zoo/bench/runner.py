"""Run benchmark jobs ``(method, image, seed)`` with resume, atomic results and an optional wall-clock budget.

Finished jobs are recorded in ``<out>/<protocol>/results.json`` after each job (atomically), and
skipped when the command is run again. DIP jobs run :class:`nasdip_zoo.restore.DIPRestorer` for
exactly t* iterations (no ground truth is used to stop); the PSNR curve against the ground truth
is recorded for the plot and for the ORACLE best, which is always labelled as such.
"""

from __future__ import annotations

import datetime as _dt
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from .._files import read_json
from ..genotype import write_json_atomic
from .baselines import BASELINES, run_baseline
from .presets import Preset
from .protocols import Protocol, Sample, list_images

__all__ = ["Job", "OutOfTime", "ResultsStore", "run_dip", "run_classical", "plan_jobs", "run_jobs", "environment", "RESULTS_FORMAT"]

RESULTS_FORMAT = "nasdip-bench-results/1"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str | torch.device) -> str:
    """A human name of the device the job ran on (GPU model, or CPU model and thread count)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    return f"cpu: {_cpu_model()} ({torch.get_num_threads()} threads)"


def environment() -> dict[str, Any]:
    """Machine, software versions and date, stored with every results file."""
    import os

    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "nasdip_zoo_commit": _git_head(),
    }


def _git_head() -> str | None:
    """The git commit of the code that ran (None outside a git checkout)."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _clean(v: float | None, nd: int = 4) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), nd)


def _genotype_for(method: str, width: int | None):
    from ..zoo import get_card

    g = get_card(method).genotype
    if width is not None:
        g = g.with_width(width)
    return g


class OutOfTime(RuntimeError):
    """A job was interrupted at the wall-clock deadline of ``--time-budget`` (nothing is recorded)."""


def run_dip(method: str, sample: Sample, protocol: Protocol, *, seed: int, iterations: int,
            width: int | None = None, device: str = "auto", curve_every: int = 1,
            progress: bool = False, deadline: float | None = None) -> dict[str, Any]:
    """One DIP run of ``method`` (a zoo name or card path) for exactly ``iterations`` iterations.

    Returns the headline PSNR of the final output (the protocol's metric), its SSIM, the ORACLE
    best PSNR over the run and its iteration, the PSNR curve, timings and the device. Raises
    :class:`OutOfTime` when ``time.monotonic()`` passes ``deadline`` before the run ends.
    """
    from ..restore import DIPRestorer
    from ..zoo import get_card

    task = protocol.task
    dip = get_card(method).dip_for(task)
    restorer = DIPRestorer(
        _genotype_for(method, width), iterations=int(iterations), lr=dip.lr, reg_noise_std=dip.reg_noise_std,
        ema=dip.ema if dip.ema is not None else False, input_channels=dip.input_channels,
        input_scale=dip.input_scale, seed=int(seed), device=device, progress=progress,
    )
    gt_t = torch.from_numpy(np.ascontiguousarray(sample.ground_truth)).permute(2, 0, 1)[None].double().to(restorer.device)
    curve: list[float] = []

    def callback(it: int, info: dict[str, Any]) -> bool:
        curve.append(protocol.curve_value(info, gt_t) if (it % curve_every == 0 or it == iterations or task != "sr") else math.nan)
        return deadline is not None and time.monotonic() > deadline  # True stops the restorer

    res = restorer.restore(
        sample.observation, sample.operator, scale=sample.scale, mask=sample.mask,
        ground_truth=None if task == "sr" else sample.ground_truth, callback=callback,
        out_channels=sample.ground_truth.shape[-1],
    )
    if res.iterations < iterations:
        raise OutOfTime(f"{method} stopped at iteration {res.iterations} of {iterations}: the time budget ran out")
    out = res.output
    arr = np.asarray(curve, dtype=np.float64)
    finite = np.where(np.isfinite(arr), arr, -np.inf)
    best = int(np.argmax(finite)) if arr.size else 0
    return {
        "kind": "dip",
        "psnr": _clean(protocol.score(out, sample.ground_truth)),
        "ssim": _clean(protocol.ssim(out, sample.ground_truth)),
        "oracle_psnr": _clean(float(finite[best])) if arr.size else None,
        "oracle_iteration": best + 1 if arr.size else None,
        "iterations": res.iterations,
        "seconds": round(res.seconds, 3),
        "seconds_per_iteration": round(res.seconds / max(res.iterations, 1), 5),
        "rollbacks": res.rollbacks,
        "device": device_name(restorer.device),
        "curve_every": int(curve_every),
        "curve": [_clean(v, 3) for v in arr[curve_every - 1 :: curve_every]],
        "settings": {k: res.settings.get(k) for k in ("lr", "reg_noise_std", "ema", "input_channels", "input_scale")},
    }


def run_classical(name: str, sample: Sample, protocol: Protocol) -> dict[str, Any]:
    """One run of a classical baseline on ``sample``, scored by the protocol's metric."""
    t0 = time.perf_counter()
    out = run_baseline(name, sample)
    seconds = time.perf_counter() - t0
    return {
        "kind": "classical",
        "psnr": _clean(protocol.score(out, sample.ground_truth)),
        "ssim": _clean(protocol.ssim(out, sample.ground_truth)),
        "oracle_psnr": None,
        "oracle_iteration": None,
        "iterations": None,
        "seconds": round(seconds, 3),
        "seconds_per_iteration": None,
        "device": device_name("cpu"),
    }


# ----------------------------------------------------------------------------------------------


@dataclass
class Job:
    """One benchmark job: ``method`` on ``image`` with ``seed`` under ``protocol`` (results go to ``store``)."""

    store: "ResultsStore"
    method: str
    image: Path
    seed: int
    iterations: int | None = None  # None for a classical baseline
    t_star_source: str = ""

    @property
    def key(self) -> str:
        return f"{self.method}|{self.image.stem}|{self.seed}"

    @property
    def is_dip(self) -> bool:
        return self.iterations is not None


class ResultsStore:
    """``results.json`` of one protocol: its configuration, finished records, progress; written atomically."""

    def __init__(self, folder: str | Path, protocol: Protocol, config: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "results.json"
        self.protocol = protocol
        self.config = config
        self.data: dict[str, Any] = {
            "format": RESULTS_FORMAT, "protocol": protocol.config(), "config": config,
            "environment": environment(), "records": {}, "progress": {},
        }
        if self.path.is_file():
            old = read_json(self.path, "; move it away to start afresh")
            if old.get("format") != RESULTS_FORMAT:
                raise ValueError(f"{self.path} is not a nasdip bench results file; use another --out")
            def settings(d: dict[str, Any] | None) -> dict[str, Any]:  # the metric's text is documentation
                return {k: v for k, v in (d or {}).items() if k != "metric"}

            for what, mine in (("protocol", protocol.config()), ("config", config)):
                if settings(old.get(what)) != settings(mine):
                    raise ValueError(
                        f"{self.path} was made with {what} {old.get(what)} but this run uses {mine}; "
                        "use another --out (or the same settings) to resume"
                    )
            self.data["records"] = old.get("records", {})
            self.data["runs"] = old.get("runs", [])

    @property
    def records(self) -> dict[str, dict[str, Any]]:
        return self.data["records"]

    def done(self, job: Job) -> bool:
        rec = self.records.get(job.key)
        if rec is None:
            return False
        if job.is_dip and rec.get("t_star") != job.iterations:
            raise ValueError(
                f"{self.path}: {job.key} was run with t* = {rec.get('t_star')} but this run asks for {job.iterations}; "
                "use another --out to compare stopping points"
            )
        return True

    def add(self, job: Job, record: dict[str, Any]) -> None:
        record = {"method": job.method, "image": job.image.stem, "seed": job.seed,
                  "t_star": job.iterations, "t_star_source": job.t_star_source or None, **record}
        self.records[job.key] = record
        self.save()

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, self.data)


def plan_jobs(protocol: Protocol, data: str | Path, *, methods: Sequence[str], preset: Preset,
              images: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
              iterations: int | None = None, out: str | Path, device: str = "auto",
              command: str = "") -> tuple["ResultsStore", list[Job]]:
    """The jobs of one protocol and the results store they go to (``<out>/<protocol key>``)."""
    if images:
        files = list_images(data, list(images))
    else:
        files = list_images(data)
        chosen = list(preset.images.get(protocol.task) or [])
        if chosen:
            stems = {f.stem for f in files}
            if set(chosen) <= stems:
                files = [f for c in chosen for f in files if f.stem == c]
            else:  # any other folder: the preset's number of images, the first in name order
                files = files[: len(chosen)]
                print(f"preset {preset.name}: {data} lacks {sorted(set(chosen) - stems)}; using its first "
                      f"{len(files)} images {[f.stem for f in files]} (choose with --images)", file=sys.stderr)
    seeds = list(seeds) if seeds else list(preset.seeds)
    plan: list[tuple[str, int | None, str]] = []
    for m in methods:
        if m in BASELINES:
            if BASELINES[m][0] != protocol.task:
                raise ValueError(f"--methods: {m!r} is a {BASELINES[m][0]} baseline, not for {protocol.task}")
            plan.append((m, None, ""))
        elif iterations is not None:
            plan.append((m, int(iterations), "--iterations"))
        else:
            t, src = preset.t_star(m, protocol.task, getattr(protocol, "scale", None))
            plan.append((m, t, src))
    config = {"preset": preset.name, "crop": protocol.crop, "width": preset.width}
    store = ResultsStore(Path(out) / protocol.key, protocol, config)
    store.data["data"] = str(Path(data).resolve())
    store.data["command"] = command
    store.data["device_requested"] = device
    store.data["preset"] = preset.describe()
    jobs = [Job(store, m, f, s, it, src) for s in seeds for f in files for (m, it, src) in plan]
    return store, jobs


def interleave(job_lists: Sequence[Sequence[Job]]) -> list[Job]:
    """Round-robin over protocols, so a budget that runs out leaves every task partly done."""
    out: list[Job] = []
    for i in range(max((len(j) for j in job_lists), default=0)):
        out.extend(jl[i] for jl in job_lists if i < len(jl))
    return out


def _estimate(job: Job) -> float:
    """Seconds a job is expected to take, from finished records of the same protocol (0 if none)."""
    recs = job.store.records.values()
    if not job.is_dip:
        xs = [r["seconds"] for r in recs if r.get("method") == job.method]
        return float(np.mean(xs)) if xs else 0.0
    same = [r["seconds_per_iteration"] for r in recs if r.get("method") == job.method and r.get("seconds_per_iteration")]
    anyd = [r["seconds_per_iteration"] for r in recs if r.get("kind") == "dip" and r.get("seconds_per_iteration")]
    spi = float(np.mean(same)) if same else (max(anyd) if anyd else 0.0)
    return spi * job.iterations


def run_jobs(jobs: Iterable[Job], *, device: str = "auto", time_budget: float | None = None,
             progress: bool = True, log: Callable[[str], None] | None = None, executor: str = "local",
             ray: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``jobs`` in order, skipping finished ones. With ``time_budget`` (seconds) no job is started that
    is expected to end past it (expected from finished jobs), and a DIP job still running at the deadline
    is stopped and not recorded. Records progress (fraction of jobs done) in every results file.
    ``executor="ray"`` runs them as Ray tasks (``ray``: address, cpus_per_job, gpus_per_job)."""
    jobs = list(jobs)
    stores = {id(j.store): j.store for j in jobs}
    samples: dict[tuple[int, str, int], Sample] = {}
    t0 = time.monotonic()
    ran = skipped = 0
    stopped = False
    bar = None
    todo = [j for j in jobs if not j.store.done(j)]
    skipped = len(jobs) - len(todo)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), initial=skipped, desc="nasdip bench", unit="job")
    for st in stores.values():
        st.data.setdefault("runs", []).append({"started": environment()["date"], "time_budget_s": time_budget,
                                               "command": st.data.get("command")})
    try:
        if executor == "ray":  # issue 7: the same jobs as Ray tasks, recorded here as they finish
            from .ray_executor import run_jobs_ray

            ran, stopped = run_jobs_ray(todo, device=device, t0=t0, time_budget=time_budget, bar=bar, log=log, **(ray or {}))
            todo = []
        elif executor != "local":
            raise ValueError(f"executor {executor!r} is not 'local' or 'ray'")
        for job in todo:
            if time_budget is not None and (time.monotonic() - t0) + _estimate(job) > time_budget:
                stopped = True
                break
            sk = (id(job.store), str(job.image), job.seed)
            if sk not in samples:
                samples.clear()
                samples[sk] = job.store.protocol.prepare(job.image, job.seed)
            sample = samples[sk]
            if job.is_dip:
                width = job.store.config.get("width")
                every = max(1, job.iterations // 300)
                try:
                    rec = run_dip(job.method, sample, job.store.protocol, seed=job.seed, iterations=job.iterations,
                                  width=width, device=device, curve_every=every,
                                  deadline=None if time_budget is None else t0 + time_budget)
                except OutOfTime:
                    stopped = True
                    break
            else:
                rec = run_classical(job.method, sample, job.store.protocol)
            job.store.add(job, rec)
            ran += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix({"last": f"{job.store.protocol.key} {job.method} {rec['psnr']}"}, refresh=False)
            if log:
                log(f"{job.store.protocol.key} {job.key}: {rec['psnr']} dB in {rec['seconds']} s")
    finally:
        if bar is not None:
            bar.close()
        elapsed = time.monotonic() - t0
        for st in stores.values():
            mine = [j for j in jobs if j.store is st]
            done = sum(1 for j in mine if j.key in st.records)
            st.data["progress"] = {
                "jobs_planned": len(mine), "jobs_done": done,
                "fraction_done": round(done / len(mine), 4) if mine else 1.0,
                "stopped_by_time_budget": stopped, "time_budget_s": time_budget,
            }
            st.data["runs"][-1].update({"ended": environment()["date"], "seconds": round(elapsed, 1)})
            st.save()
    return {"ran": ran, "skipped": skipped, "planned": len(jobs), "stopped_by_time_budget": stopped,
            "seconds": round(time.monotonic() - t0, 1)}
