"""``nasdip restore TASK INPUT_FOLDER -o OUTPUT_FOLDER``: every image of a folder, locally or over Ray.

Jobs are (method, image). Each finished job writes ``OUTPUT/<image stem>.png`` (atomically) and its
record into ``OUTPUT/restore-results.json``; running the same command again skips finished jobs
(resume), with the local or the Ray executor alike.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._files import read_json
from .executors import EXECUTORS, add_executor_arguments, run_with
from .genotype import write_json_atomic

__all__ = ["RestoreJob", "plan_folder", "run_restore_job", "restore_folder", "RESULTS_NAME", "IMAGE_SUFFIXES"]

RESULTS_NAME = "restore-results.json"
RESULTS_FORMAT = "nasdip-restore-folder/1"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


@dataclass(frozen=True)
class RestoreJob:
    """Restore ``image`` with ``method`` (a genotype name or path) into ``output``; ``mask`` for inpaint."""

    method: str
    image: Path
    output: Path
    mask: Path | None = None

    @property
    def key(self) -> str:
        return f"{self.method}|{self.image.name}"


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def plan_folder(task: str, input_dir: str | Path, output_dir: str | Path, method: str,
                mask: str | Path | None = None) -> list[RestoreJob]:
    """One job per image of ``input_dir``; ``mask`` is one mask file for all or a folder of masks named like the images."""
    src, dst = Path(input_dir), Path(output_dir)
    if not src.is_dir():
        raise FileNotFoundError(f"input folder {src} does not exist")
    if dst.exists() and not dst.is_dir():
        raise ValueError(f"output {dst} is a file; give a folder for folder mode")
    images = _images(src)
    if not images:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {src}")
    if task == "inpaint" and mask is None:
        raise ValueError("inpainting a folder needs --mask: one mask file, or a folder of masks named like the images")
    if task != "inpaint" and mask is not None:
        raise ValueError("--mask is only for inpaint")
    jobs = []
    for img in images:
        m = None
        if mask is not None:
            mp = Path(mask)
            if mp.is_dir():
                found = [p for p in _images(mp) if p.stem == img.stem]
                if not found:
                    raise FileNotFoundError(f"no mask named {img.stem}.* in {mp} for {img.name}")
                m = found[0]
            elif mp.is_file():
                m = mp
            else:
                raise FileNotFoundError(f"mask {mp} does not exist")
        jobs.append(RestoreJob(method, img, dst / f"{img.stem}.png", m))
    return jobs


def run_restore_job(job: RestoreJob, task: str, options: dict[str, Any]) -> dict[str, Any]:
    """Run one job (in this process or a Ray worker): restore, write the image atomically, return its record."""
    from .imageio import load_image, save_image
    from .restore import DIPRestorer

    obs = load_image(job.image)
    mask = load_image(job.mask) if job.mask is not None else None
    if mask is not None and mask.size != obs.size:
        raise ValueError(f"mask {job.mask.name} is {mask.size[0]}x{mask.size[1]} but {job.image.name} is {obs.size[0]}x{obs.size[1]}")
    r = DIPRestorer(job.method, iterations=options.get("iterations"), seed=options.get("seed", 0),
                    device=options.get("device", "auto"), progress=False, fast=options.get("fast", "auto"))
    res = r.restore(obs, task, scale=options.get("scale"), mask=mask)
    job.output.parent.mkdir(parents=True, exist_ok=True)
    save_image(res.output, job.output)
    return {"method": job.method, "image": job.image.name, "output": job.output.name, "iterations": res.iterations,
            "seconds": round(res.seconds, 3), "rollbacks": res.rollbacks, "device": res.settings.get("device"),
            "fast": res.settings.get("fast"), "seed": res.settings.get("seed")}


class _Runner:
    """A picklable job function for the executors."""

    def __init__(self, task: str, options: dict[str, Any]) -> None:
        self.task, self.options = task, options

    def __call__(self, job: RestoreJob) -> dict[str, Any]:
        return run_restore_job(job, self.task, self.options)


def restore_folder(task: str, input_dir: str | Path, output_dir: str | Path, *, genotype: str | None = None,
                   mask: str | Path | None = None, scale: int | None = None, iterations: int | None = None,
                   seed: int = 0, device: str = "auto", fast: str = "auto", executor: str = "local",
                   ray_address: str | None = None, cpus_per_job: float = 1, gpus_per_job: float = 0,
                   local_cpus: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Restore every image of ``input_dir`` into ``output_dir`` (resumable); returns a summary."""
    if executor not in EXECUTORS:
        raise ValueError(f"--executor {executor!r} is not one of {EXECUTORS}")
    method = genotype or f"nasdip-{task}"
    jobs = plan_folder(task, input_dir, output_dir, method, mask)
    out = Path(output_dir)
    results_path = out / RESULTS_NAME
    options = {"iterations": iterations, "seed": seed, "device": device, "fast": fast, "scale": scale}
    config = {"task": task, **options}
    data: dict[str, Any] = {"format": RESULTS_FORMAT, "config": config, "records": {}}
    if results_path.is_file():
        old = read_json(results_path, "; move it away to start afresh")
        if old.get("format") != RESULTS_FORMAT or old.get("config") != config:
            raise ValueError(f"{results_path} was written by a different run ({old.get('config')}); "
                             "use another output folder (or the same settings) to resume")
        data["records"] = old.get("records", {})
    todo = [j for j in jobs if not (j.key in data["records"] and j.output.is_file())]
    out.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=f"nasdip restore {task}", unit="image")

    def record(job: RestoreJob, rec: dict[str, Any]) -> None:
        data["records"][job.key] = rec
        write_json_atomic(results_path, data)
        if bar is not None:
            bar.update(1)

    t0 = time.monotonic()
    try:
        ray_opts = dict(address=ray_address, num_cpus=cpus_per_job, num_gpus=gpus_per_job, local_cpus=local_cpus)
        ran = run_with(executor, _Runner(task, options), todo, record, **(ray_opts if executor == "ray" else {}))
    finally:
        if bar is not None:
            bar.close()
    write_json_atomic(results_path, data)
    return {"planned": len(jobs), "ran": ran, "skipped": len(jobs) - len(todo), "seconds": round(time.monotonic() - t0, 1),
            "results": str(results_path)}


def add_folder_arguments(r: argparse.ArgumentParser) -> None:
    """The restore subcommand's folder-mode and speed options."""
    r.add_argument("--fast", default="auto", help="fast path: auto (default), eager, or a label such as cl+fused+sync25")
    add_executor_arguments(r, "folder mode: ")


def cmd_restore_folder(args: argparse.Namespace) -> int:
    """Folder mode of ``nasdip restore``: INPUT is a folder, ``-o`` an output folder."""
    from .fastpath import FastPath

    if args.checkpoint is not None:
        raise ValueError("--checkpoint is for one image; folder mode resumes from OUTPUT/restore-results.json")
    if args.task == "sr" and args.scale is None:
        raise ValueError("sr needs --scale 2, 4 or 8")
    FastPath.from_label(args.fast)  # a bad label fails before any job
    summary = restore_folder(args.task, args.input, args.output, genotype=args.genotype, mask=args.mask, scale=args.scale,
                             iterations=args.iterations, seed=args.seed, device=args.device, fast=args.fast,
                             executor=args.executor, ray_address=args.ray_address, cpus_per_job=args.cpus_per_job,
                             gpus_per_job=args.gpus_per_job, progress=not args.quiet)
    if not args.quiet:
        print(f"{summary['ran']} restored, {summary['skipped']} already done, in {summary['seconds']} s", flush=True)
    print(summary["results"])
    return 0
