"""``nasdip search``: search a deep-image-prior architecture for a task on your own held-out images.

Settings come from the command line, a ``--recipe`` JSON (same keys as the options, dashes or
underscores), then the defaults below, in that order. Each algorithm writes to ``<out>/<algorithm>``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._files import read_json

__all__ = ["add_parser", "DEFAULTS", "run_from_args"]

DEFAULTS: dict[str, Any] = {
    "task": None,
    "train_dir": None,
    "budget": None,
    "algorithm": "controller",
    "mode": "joint",
    "stage_split": 0.5,
    "executor": "local",
    "address": None,
    "ray_cpus": 2,
    "task_cpus": 1.0,
    "task_gpus": 0.0,
    "out": None,
    "crop": 32,
    "images": 4,
    "iterations": 300,
    "sigma": 25.0,
    "factor": 4,
    "keep": 0.5,
    "channels": 128,
    "skip_channels": None,
    "connections": "shared",
    "batch_size": 1,
    "halving_keep": 0.5,
    "seed": 0,
    "population": 20,
    "sample_size": 5,
    "top_k": 3,
    "curve_every": 1,
    "device": "cpu",
    "threads": None,
    "lr": None,
    "reg_noise_std": None,
    "ema": None,
    "plot": False,
}


def add_parser(subparsers: Any) -> None:
    """Register ``nasdip search``."""
    p = subparsers.add_parser(
        "search",
        help="search a prior (upsampling cell + connections) for a task on your own images",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    a = p.add_argument
    a("--recipe", help="JSON file of settings (search/recipes/<task>-cpu.json, <task>-paper.json)")
    a("--task", choices=["denoise", "sr", "inpaint"], help="degradation protocol of the training images")
    a("--train-dir", help="folder of clean held-out training images (ground truth)")
    a("--budget", type=int, help="candidates to sample (per algorithm)")
    a("--algorithm", choices=["controller", "random", "evolution"], help="searcher (default controller)")
    a("--mode", choices=["joint", "staged"], help="controller: both spaces jointly, or cell first then connections")
    a("--stage-split", type=float, help="staged mode: fraction of the budget for the cell stage (default 0.5)")
    a("--executor", choices=["local", "ray"], help="in-process, or Ray tasks (default local)")
    a("--address", help="Ray cluster address ('auto', 'ray://host:10001'); none starts a local instance")
    a("--ray-cpus", type=int, help="CPUs of a local Ray instance (default 2)")
    a("--task-cpus", type=float, help="CPUs per candidate task (default 1)")
    a("--task-gpus", type=float, help="GPUs per candidate task (default 0)")
    a("--resume", action="store_true", help="continue the search in --out where it stopped")
    a("--out", help="output folder (default search-runs/<task>); each algorithm writes to <out>/<algorithm>")
    a("--crop", type=int, help="centre crop of each training image in pixels; 0 = full size (default 32)")
    a("--images", type=int, help="training images used (first N by name; default 4)")
    a("--iterations", type=int, help="DIP iterations per image and candidate; t* is searched below it (default 300)")
    a("--sigma", type=float, help="denoise: noise sigma on the 0-255 scale (default 25)")
    a("--factor", type=int, choices=[2, 4, 8], help="sr: scale factor (default 4)")
    a("--keep", type=float, help="inpaint: fraction of pixels kept (default 0.5)")
    a("--channels", type=int, help="backbone width of the searched networks (default 128, the paper's)")
    a("--skip-channels", type=int, help="skip width (default = --channels; the space uses sum merges)")
    a("--connections", choices=["shared", "explicit"], help="connection space: paper's shared offsets or a d x d matrix")
    a("--batch-size", type=int, help="candidates per controller update / parallel batch (default 1)")
    a("--halving-keep", type=float, help="successive halving: fraction kept at each image rung; 1 = off (default 0.5)")
    a("--seed", type=int, help="seed of the searcher and of DIP (default 0)")
    a("--population", type=int, help="evolution: population size (default 20)")
    a("--sample-size", type=int, help="evolution: tournament size (default 5)")
    a("--top-k", type=int, help="export the best K as genotype cards (default 3)")
    a("--curve-every", type=int, help="log the mean PSNR curve every N iterations (default 1)")
    a("--device", help="DIP device: cpu, cuda, auto (default cpu)")
    a("--threads", type=int, help="torch intra-op threads of this process (1 is fastest on a shared CPU)")
    a("--lr", type=float, help="override DIP's learning rate for the task")
    a("--reg-noise-std", type=float, help="override DIP's input-noise jitter")
    a("--ema", type=float, help="override the output EMA weight (0 = off)")
    a("--plot", action="store_true", default=None, help="write <out>/rewards.png comparing the algorithms in --out")
    a("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_from_args)


def resolve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Command line over recipe over defaults; ValueError for unknown recipe keys or missing required ones."""
    recipe: dict[str, Any] = {}
    if args.recipe:
        path = Path(args.recipe)
        if not path.is_file():
            raise FileNotFoundError(f"no recipe at {str(path)!r}")
        raw = read_json(path, " (a recipe is a JSON object)")
        raw = {k.replace("-", "_"): v for k, v in raw.items() if not k.startswith("_") and k != "comment"}
        unknown = sorted(set(raw) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"recipe {path}: unknown keys {unknown}; allowed: {sorted(DEFAULTS)}")
        recipe = raw
    s = {}
    for key, default in DEFAULTS.items():
        cli = getattr(args, key, None)
        s[key] = cli if cli is not None else recipe.get(key, default)
    missing = [f"--{k.replace('_', '-')}" for k in ("task", "train_dir", "budget") if s[k] is None]
    if missing:
        raise ValueError(f"nasdip search needs {', '.join(missing)} (or a --recipe that sets them)")
    return s


def run_from_args(args: argparse.Namespace) -> int:
    from ..genotype import Backbone
    from ..space import SearchSpace
    from ..zoo import get_card
    from .baselines import make_searcher
    from .evaluate import DIPEvaluator, TaskProtocol, load_training_images
    from .executors import make_executor
    from .report import collect_logs, plot_rewards, summary
    from .runner import SearchRunner, export_cards

    s = resolve_settings(args)
    if s["threads"]:
        import torch

        torch.set_num_threads(int(s["threads"]))  # this CLI process only
    task = s["task"]
    images = load_training_images(s["train_dir"], crop=s["crop"] or None, images=s["images"])
    protocol = TaskProtocol(task=task, sigma=float(s["sigma"]) / 255.0, factor=int(s["factor"]), keep=float(s["keep"]))
    evaluator = DIPEvaluator(images, protocol, iterations=int(s["iterations"]), lr=s["lr"],
                             reg_noise_std=s["reg_noise_std"], ema=s["ema"], curve_every=int(s["curve_every"]),
                             device=s["device"])
    channels = int(s["channels"])
    space = SearchSpace(s["connections"], Backbone(channels=channels, skip_channels=int(s["skip_channels"] or channels)))
    budget = int(s["budget"])
    searcher = make_searcher(s["algorithm"], space, int(s["seed"]), mode=s["mode"],
                             cell_budget=max(1, int(round(budget * float(s["stage_split"])))),
                             population=s["population"], sample_size=s["sample_size"])
    root = Path(s["out"] or f"search-runs/{task}")
    out = root / s["algorithm"]
    config = {k: s[k] for k in ("task", "train_dir", "crop", "images", "iterations", "sigma", "factor", "keep", "mode",
                                "stage_split", "population", "sample_size", "lr", "reg_noise_std", "ema", "curve_every")}
    executor = make_executor(s["executor"], **({"address": s["address"], "num_cpus": s["ray_cpus"],
                                                "task_cpus": s["task_cpus"], "task_gpus": s["task_gpus"]}
                                               if s["executor"] == "ray" else {}))
    try:
        runner = SearchRunner(space, searcher, evaluator, out, budget=budget, batch_size=int(s["batch_size"]),
                              seed=int(s["seed"]), executor=executor, halving_keep=float(s["halving_keep"]),
                              config=config, progress=not args.no_progress)
        entries = runner.run(resume=args.resume)
    finally:
        executor.close()
    base = get_card("dip-skip").settings[task]
    dip = {"lr": s["lr"] or base.lr, "reg_noise_std": base.reg_noise_std if s["reg_noise_std"] is None else s["reg_noise_std"],
           "ema": base.ema if s["ema"] is None else (s["ema"] or None), "input_channels": base.input_channels,
           "input_scale": base.input_scale}
    provenance = {"tool": "nasdip search", "algorithm": s["algorithm"], "seed": s["seed"], "budget": budget,
                  "training_set": {"dir": str(s["train_dir"]), "images": len(images),
                                   "crop": s["crop"] or "full (multiple of 32)", "protocol": protocol.__dict__},
                  "iterations_per_candidate": s["iterations"], "channels": channels, "log": str(out / "candidates.jsonl")}
    cards = export_cards(entries, out / "cards", k=int(s["top_k"]), task=task, settings=dip,
                         prefix=f"search-{task}-{s['algorithm']}", provenance=provenance, iterations=int(s["iterations"]),
                         images_note=(f"{s['crop']}x{s['crop']} crops" if s["crop"] else "full-size images") + f" at {channels} channels")
    logs = collect_logs(root)
    print(summary({s["algorithm"]: entries}))
    for c in cards:
        print(f"card: {c}")
    if s["plot"]:
        print(f"plot: {plot_rewards(logs, root / 'rewards.png', title=f'{task}: reward per candidate')}")
    return 0
