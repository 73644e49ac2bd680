"""Helpers shared by the examples: find the checkout and the data, tile images, time a run."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "data"


def data_dir(path: str | None) -> Path:
    """The benchmark data folder: ``--data``, else ../shared/data beside the checkout, else $NASDIP_DATA,
    else ../../shared/data (a git worktree one level deeper); a wrong path fails with a clear message."""
    if path:
        candidates = [Path(path)]
    else:
        candidates = [DEFAULT_DATA, Path(os.environ.get("NASDIP_DATA", DEFAULT_DATA)), ROOT.parents[1] / "shared" / "data"]
    for d in candidates:
        if d.is_dir():
            return d
    raise SystemExit(f"error: data folder {candidates[0]} not found; pass --data /path/to/shared/data")


def to_rgb_array(x: torch.Tensor | np.ndarray, normalise: bool = False) -> np.ndarray:
    """H x W x 3 uint8 from a (1 x) C x H x W tensor or an H x W matrix; ``normalise`` maps max to 1."""
    a = x.detach().cpu().float() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x)).float()
    while a.dim() > 3:
        a = a[0]
    if a.dim() == 2:
        a = a[None]
    if normalise:
        a = a / a.max().clamp_min(1e-12)
    a = a.clamp(0, 1)
    if a.shape[0] == 1:
        a = a.expand(3, -1, -1)
    return (a.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def tile(rows: list[list[np.ndarray]], gap: int = 4, zoom: int = 1) -> np.ndarray:
    """Tile H x W x 3 uint8 images row by row on a white background (cells may differ in size);
    ``zoom`` repeats pixels so small matrices stay visible."""
    rows = [[im.repeat(zoom, 0).repeat(zoom, 1) for im in row] for row in rows]
    heights = [max(im.shape[0] for im in row) for row in rows]
    width = max(sum(im.shape[1] for im in row) + gap * (len(row) - 1) for row in rows)
    out = np.full((sum(heights) + gap * (len(rows) - 1), width, 3), 255, np.uint8)
    y = 0
    for row, hh in zip(rows, heights):
        x = 0
        for im in row:
            out[y : y + im.shape[0], x : x + im.shape[1]] = im
            x += im.shape[1] + gap
        y += hh + gap
    return out


def add_run_args(p: argparse.ArgumentParser, device: str = "auto") -> None:
    """--seed, --device and --threads, shared by the examples."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=device)
    p.add_argument("--threads", type=int, help="torch CPU threads (quick: 1; small tensors gain nothing from more)")


def apply_threads(args: argparse.Namespace) -> None:
    if args.threads or args.quick:
        torch.set_num_threads(args.threads or 1)
