"""``nasdip bench {sr,denoise,inpaint,all,calibrate}``: the paper's benchmarks on any folder of images."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from ..executors import add_executor_arguments  # light: Ray is imported only by --executor ray

__all__ = ["add_parser", "STANDARD_DATA"]

# where each task's test set lives under ../shared/data (used by `nasdip bench all --data ROOT`)
STANDARD_DATA = {"sr": "set5/x4_GT", "denoise": "bm3d/gt", "inpaint": "heide_inpainting/gt"}


def _common(p: argparse.ArgumentParser, *, data_help: str) -> None:
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--preset", choices=["full", "cpu"], default="full",
                   help="full: the paper's protocol unchanged (GPU); cpu: scaled to 2 CPU cores (benchmarks/README.md)")
    p.add_argument("--images", nargs="+", help="image names (stems) to use, overriding the preset")
    p.add_argument("--methods", nargs="+", help="genotypes (zoo names or card paths) and baselines; default: the "
                   "task's NAS-DIP genotype, its two ablations, dip-skip and the classical baselines")
    p.add_argument("--iterations", type=int, help="DIP iterations (= the stopping point), overriding the preset's t*")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (degradation and DIP); default: the preset's")
    p.add_argument("--scale", type=int, choices=[2, 4, 8], default=4, help="super-resolution factor")
    p.add_argument("--masks", choices=["heide", "bernoulli", "published"], default="heide",
                   help="inpainting masks: the reproducible Heide mask, seeded Bernoulli, or recovered from 50p_masked")
    p.add_argument("--masks-dir", help="folder of DIP's *_masked.png inputs for --masks published (default: ../50p_masked)")
    p.add_argument("--crop", type=int, help="centre crop size (multiple of 32), overriding the preset")
    p.add_argument("--out", default="bench-results", help="output folder (one subfolder per protocol)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--time-budget", type=float, help="wall-clock seconds: start no job that would end past it")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_executor_arguments(p)  # issue 7: --executor ray, --ray-address, --cpus-per-job, --gpus-per-job


def add_parser(subparsers: Any) -> None:
    """Register ``nasdip bench`` and its sub-commands."""
    bench = subparsers.add_parser("bench", help="reproduce the paper's Tables 1 and 2 (SR, denoising, inpainting)")
    sub = bench.add_subparsers(dest="bench_task", required=True)
    for task, what in (("sr", "super-resolution (Y-PSNR, DIP's shave)"), ("denoise", "denoising, sigma 25"),
                       ("inpaint", "inpainting, 50%% of pixels kept")):
        p = sub.add_parser(task, help=what)
        _common(p, data_help="folder of ground-truth images")
        p.set_defaults(func=_cmd_bench, tasks=[task])
    p = sub.add_parser("all", help="all three tasks, interleaved, within one --time-budget")
    _common(p, data_help="the data root holding set5/x4_GT, bm3d/gt and heide_inpainting/gt (../shared/data)")
    p.set_defaults(func=_cmd_bench, tasks=["sr", "denoise", "inpaint"])
    p = sub.add_parser("calibrate", help="estimate a preset's t* per genotype on held-out images (no test ground truth)")
    p.add_argument("task", choices=["sr", "denoise", "inpaint"])
    p.add_argument("--data", required=True, help="folder of HELD-OUT images (e.g. ../shared/data/cbsd68)")
    p.add_argument("--images", nargs="+", help="held-out image stems (default: three CBSD68 ids)")
    p.add_argument("--methods", nargs="+", help="genotypes (default: the task's four)")
    p.add_argument("--preset", choices=["cpu"], default="cpu")
    p.add_argument("--iterations", type=int, required=True, help="how long to run (t* is chosen within it)")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--scale", type=int, choices=[2, 4, 8], default=4)
    p.add_argument("--out", help="the t* table to merge into (default: the preset's cpu_tstar.json)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_calibrate)


def _command_line(args: argparse.Namespace) -> str:
    """The command as a user would type it (rebuilt from the parsed arguments, so it is right when
    ``main(argv)`` is called from Python too)."""
    words = ["nasdip", "bench", args.bench_task] + ([args.task] if args.bench_task == "calibrate" else [])
    for name, value in vars(args).items():
        if name in ("func", "tasks", "bench_task", "command", "task") or value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            words += [flag] + [str(v) for v in value]
        else:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def _cmd_bench(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .presets import default_methods, get_preset
    from .protocols import make_protocol
    from .report import write_report
    from .runner import interleave, plan_jobs, run_jobs

    preset = get_preset(args.preset)
    if args.crop is not None:
        preset = replace(preset, crop=args.crop)
    if args.iterations is not None and args.iterations < 1:
        raise ValueError(f"--iterations {args.iterations}: must be a positive integer")
    if args.time_budget is not None and args.time_budget <= 0:
        raise ValueError(f"--time-budget {args.time_budget}: must be a positive number of seconds")
    multi = len(args.tasks) > 1
    if multi and args.images:
        raise ValueError("--images names images of one folder; use it with a single task (sr, denoise or inpaint)")
    stores, lists = [], []
    for task in args.tasks:
        data = Path(args.data) / STANDARD_DATA[task] if multi else Path(args.data)
        protocol = make_protocol(task, crop=preset.crop, scale=args.scale, masks=args.masks, masks_dir=args.masks_dir)
        methods = args.methods if (args.methods and not multi) else default_methods(task, preset)
        if multi and args.methods:
            methods = [m for m in args.methods if _fits(m, task)]
        store, jobs = plan_jobs(protocol, data, methods=methods, preset=preset, images=args.images, seeds=args.seeds,
                                iterations=args.iterations, out=args.out, device=args.device, command=_command_line(args))
        stores.append(store)
        lists.append(jobs)
    summary = run_jobs(interleave(lists), device=args.device, time_budget=args.time_budget,
                       progress=not args.no_progress, executor=args.executor,
                       ray={"address": args.ray_address, "cpus_per_job": args.cpus_per_job, "gpus_per_job": args.gpus_per_job})
    for store in stores:
        paths = write_report(store.folder)
        prog = store.data["progress"]
        print(f"{store.protocol.key}: {prog['jobs_done']}/{prog['jobs_planned']} jobs done "
              f"({100 * prog['fraction_done']:.0f}%) -> {', '.join(str(p) for p in paths)}")
    if summary["stopped_by_time_budget"]:
        print(f"stopped by --time-budget {args.time_budget:g} s; run the same command again to continue")
    return 0


def _fits(method: str, task: str) -> bool:
    """Whether ``method`` (from a multi-task --methods list) belongs to ``task``."""
    from .baselines import BASELINES
    from ..zoo import get_card

    if method in BASELINES:
        return BASELINES[method][0] == task
    return task in get_card(method).settings


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import HELD_OUT_DEFAULT, calibrate_t_star, merge_calibrations
    from .presets import CPU_TSTAR_FILE, TASK_GENOTYPES, get_preset
    from .protocols import make_protocol

    preset = get_preset(args.preset)
    if args.iterations < 1:
        raise ValueError(f"--iterations {args.iterations}: must be a positive integer")
    protocol = make_protocol(args.task, crop=preset.crop, scale=args.scale)
    methods = args.methods or list(TASK_GENOTYPES[args.task])
    entries = calibrate_t_star(protocol, args.data, methods, images=args.images or HELD_OUT_DEFAULT,
                               iterations=args.iterations, width=preset.width, seed=args.seed, device=args.device,
                               progress=not args.no_progress, command=_command_line(args))
    target = Path(args.out) if args.out else CPU_TSTAR_FILE
    merge_calibrations(target, protocol.key, entries)
    for m, e in entries.items():
        print(f"{protocol.key} {m}: t* = {e['t_star']} (held-out mean PSNR {e['peak_psnr']} dB; {e['psnr_at_end']} at {e['iterations']})")
    print(f"-> {target}")
    return 0
