"""Choose t* for a scaled preset without test ground truth: seeded runs on held-out images of the same size.

For each genotype, DIP is run for ``iterations`` on held-out crops (CBSD68 by default, disjoint from
every test set); the protocol's PSNR curves are averaged over the crops and t* is the argmax of the
mean curve. The result is merged into a JSON table (the cpu preset reads ``cpu_tstar.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..genotype import write_json_atomic
from .protocols import Protocol, list_images
from .runner import environment, run_dip

__all__ = ["calibrate_t_star", "merge_calibrations", "HELD_OUT_DEFAULT"]

HELD_OUT_DEFAULT = ("101085", "102061", "108005")  # CBSD68 ids: not in Set5, the denoising set or the Heide set


def calibrate_t_star(protocol: Protocol, data: str | Path, methods: Sequence[str], *, images: Sequence[str] | None,
                     iterations: int, width: int | None, seed: int = 0, device: str = "auto",
                     curve_every: int = 5, progress: bool = True, command: str = "") -> dict[str, Any]:
    """``{method: {"t_star", "peak_psnr", "held_out", ...}}``: the argmax of the mean held-out PSNR curve."""
    files = list_images(data, list(images) if images else None)
    out: dict[str, Any] = {}
    for method in methods:
        curves = []
        for f in files:
            sample = protocol.prepare(f, seed)
            rec = run_dip(method, sample, protocol, seed=seed, iterations=iterations, width=width,
                          device=device, curve_every=curve_every, progress=progress)
            curves.append([np.nan if v is None else v for v in rec["curve"]])
        mean = np.nanmean(np.asarray(curves, dtype=np.float64), axis=0)
        best = int(np.nanargmax(mean))
        out[method] = {
            "t_star": (best + 1) * curve_every,
            "peak_psnr": round(float(mean[best]), 3),
            "psnr_at_end": round(float(mean[-1]), 3),
            "held_out": [f.stem for f in files],
            "iterations": int(iterations),
            "seed": int(seed),
            "width": width,
            "crop": protocol.crop,
            "curve_every": int(curve_every),
            "mean_curve": [round(float(v), 3) for v in mean],
            "device": rec["device"],
            "command": command,
        }
    return out


def merge_calibrations(target: str | Path, key: str, entries: dict[str, Any]) -> Path:
    """Merge ``{method: entry}`` for protocol ``key`` into the table at ``target`` (atomic write)."""
    p = Path(target)
    table = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
    table.setdefault("about", "t* per genotype for the cpu preset, chosen on held-out CBSD68 crops (no test ground truth)")
    table.setdefault("t_star", {}).setdefault(key, {}).update(entries)
    table.setdefault("environment", {})[key] = environment()
    return write_json_atomic(p, table)
