"""Benchmark presets: ``full`` (the paper's protocol unchanged, for a GPU) and ``cpu`` (scaled to 2 CPU cores).

``cpu`` scales four things and nothing else (benchmarks/README.md explains why): 64x64 centre crops,
network width 32 (skip width min(32, the genotype's)), fewer images, and t* re-estimated at that
size on held-out CBSD68 crops (``cpu_tstar.json``, written by ``nasdip bench calibrate``), never the
paper's full-size t*. Learning rates, input noise, EMA, operators and metrics are the paper's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..zoo import get_card

__all__ = ["Preset", "PRESETS", "get_preset", "default_methods", "CPU_TSTAR_FILE", "load_cpu_t_star", "TASK_GENOTYPES"]

CPU_TSTAR_FILE = Path(__file__).resolve().parent / "cpu_tstar.json"

TASK_GENOTYPES: dict[str, tuple[str, ...]] = {
    task: (f"nasdip-{task}", f"nasdip-{task}-cell-only", f"nasdip-{task}-connections-only", "dip-skip")
    for task in ("sr", "denoise", "inpaint")
}


@dataclass(frozen=True)
class Preset:
    """What a preset fixes: crop, network width, images per task, seeds and where t* comes from."""

    name: str
    description: str
    crop: int | None = None
    width: int | None = None
    images: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    t_star_from: str = "card"  # "card": the card's (paper's) t*; "cpu": cpu_tstar.json
    max_iterations: Mapping[str, int] = field(default_factory=dict)  # cpu: t* is chosen within this budget
    genotypes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # default DIP methods ({}: TASK_GENOTYPES)

    def t_star(self, method: str, task: str, scale: int | None = None) -> tuple[int, str]:
        """(t*, where it comes from) for a DIP method on ``task`` under this preset."""
        if self.t_star_from == "card":
            dip = get_card(method).dip_for(task)
            return dip.t_star, f"card {method}: {dip.t_star_source}"
        table = load_cpu_t_star()
        key = task if task != "sr" else f"sr_x{scale or 4}"
        entry = table.get("t_star", {}).get(key, {}).get(method)
        if entry is None:
            raise ValueError(
                f"the cpu preset has no t* for {method!r} on {key} (calibrated: "
                f"{ {k: sorted(v) for k, v in table.get('t_star', {}).items()} }); run `nasdip bench calibrate` "
                "for it or pass --iterations"
            )
        return _capped_t_star(entry, self.max_iterations.get(task)), (
            f"cpu_tstar.json: argmax of the mean PSNR curve on held-out {entry['held_out']} within "
            f"{self.max_iterations.get(task, entry['iterations'])} iterations ({entry.get('command', '')})"
        )

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "crop": self.crop, "width": self.width,
                "images": {k: list(v) if v else None for k, v in self.images.items()}, "seeds": list(self.seeds),
                "t_star_from": self.t_star_from}


def _capped_t_star(entry: Mapping[str, Any], cap: int | None) -> int:
    """The argmax of a calibration's mean held-out PSNR curve, restricted to the first ``cap`` iterations."""
    every = int(entry["curve_every"])
    curve = [(-1e9 if v is None else v) for v in entry["mean_curve"]]
    n = len(curve) if cap is None else max(1, min(len(curve), cap // every))
    best = max(range(n), key=lambda i: curve[i])
    return (best + 1) * every


def load_cpu_t_star(path: Path | None = None) -> dict[str, Any]:
    """The cpu preset's t* table (``{"t_star": {task: {method: {...}}}, "command": ...}``); empty if absent."""
    p = path or CPU_TSTAR_FILE
    if not p.is_file():
        return {}
    return json.loads(p.read_text(encoding="utf-8"))


PRESETS: dict[str, Preset] = {
    "full": Preset(
        name="full",
        description="the paper's protocol unchanged: whole images, full-width networks, the card's t* (paper), one seed",
        seeds=(0,),
    ),
    "cpu": Preset(
        name="cpu",
        description=("64x64 centre crops, width-32 networks, 2 images per task (Set5 x4, denoising set, Heide set), "
                     "3 seeds, NAS-DIP vs dip-skip (ablations on request: --methods), t* = argmax of the mean PSNR "
                     "curve on held-out CBSD68 crops of the same size within 400 (SR) / 1500 (denoising) / 600 "
                     "(inpainting) iterations"),
        crop=64,
        width=32,
        images={
            "sr": ("bird_GT", "butterfly_GT"),
            "denoise": ("image_F16_512rgb", "image_House256rgb"),
            "inpaint": ("barbara", "boat"),
        },
        seeds=(0, 1, 2),
        t_star_from="cpu",
        max_iterations={"sr": 400, "denoise": 1500, "inpaint": 600},
        genotypes={task: (f"nasdip-{task}", "dip-skip") for task in ("sr", "denoise", "inpaint")},
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
    return PRESETS[name]


def default_methods(task: str, preset: Preset | None = None) -> list[str]:
    """The preset's DIP genotypes for ``task`` (default: the NAS-DIP genotype, its two ablations and dip-skip)
    and the installed classical baselines."""
    from .baselines import baseline_names

    genotypes = (preset.genotypes.get(task) if preset is not None else None) or TASK_GENOTYPES[task]
    return list(genotypes) + baseline_names(task)
