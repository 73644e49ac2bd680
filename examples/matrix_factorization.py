"""CompMirror's deep matrix factorization with NAS-DIP's searched upsampling cell (paper Sec. 4.3, Fig. 9).

The protocol of CompMirror's 1-D demo: T0 = lightfield.png resized to h x q = 128 x 128, L0 = tracks_bg.png
resized to q x w = 128 x 256, both in [0, 1]; the observation is T0 @ L0 and two deep generators recover
T and L. Runs CompMirror's bilinear upsampling and the searched cell of ``nasdip-denoise`` and reports the
misfit ||T L - Y|| / ||Y|| and the errors of T and L against T0 and L0 after the least-squares scale.

    python examples/matrix_factorization.py --quick        # CPU: 32 x 32 x 64, widths / 4, 300 iterations
    python examples/matrix_factorization.py --device cuda  # CompMirror's sizes and 20000 iterations

Writes ``factorization.png`` (rows: ground truth, bilinear, NAS-DIP; columns T, L, T @ L, each scaled to
its maximum) and ``factorization.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import _common
import numpy as np
import torch
from PIL import Image

from nasdip_zoo.genotype import write_json_atomic
from nasdip_zoo.imageio import load_image, save_image
from nasdip_zoo.integrations.compmirror import DEFAULT_WIDTHS, DeepMatrixFactorization, scale_aligned_error

VARIANTS = {"bilinear": "bilinear", "nasdip": "nasdip-denoise"}


def load_factor(path: Path, rows: int, cols: int) -> np.ndarray:
    """A grayscale image (alpha dropped) resized bilinearly to rows x cols, in [0, 1]."""
    im = load_image(path).convert("L").resize((cols, rows), Image.BILINEAR)
    return np.asarray(im, np.float32) / 255.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="benchmark data folder (default: ../shared/data beside the checkout)")
    p.add_argument("--out", default="runs/matrix_factorization", help="output folder")
    p.add_argument("--quick", action="store_true", help="small CPU run")
    p.add_argument("--size", type=int, help="h = q = size, w = 2 * size (quick: 32, else 128)")
    p.add_argument("--iterations", type=int, help="iterations per variant (quick: 300, else 20000)")
    p.add_argument("--lr", type=float, help="Adam learning rate (CompMirror: 1e-4; quick: 1e-3)")
    p.add_argument("--width-divisor", type=int, help="divide CompMirror's layer widths by this (quick: 4)")
    p.add_argument("--noise", type=float, default=0.0, help="Gaussian noise std added to the observation")
    _common.add_run_args(p, device="auto")
    args = p.parse_args(argv)
    _common.apply_threads(args)
    size = args.size or (32 if args.quick else 128)
    iterations = args.iterations or (300 if args.quick else 20000)
    lr = args.lr or (1e-3 if args.quick else 1e-4)
    div = args.width_divisor or (4 if args.quick else 1)
    widths = tuple(max(4, c // div) for c in DEFAULT_WIDTHS)
    h, q, w = size, size, 2 * size
    data = _common.data_dir(args.data) / "compmirror"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    T0 = load_factor(data / "lightfield.png", h, q)
    L0 = load_factor(data / "tracks_bg.png", q, w)
    Y = T0 @ L0
    if args.noise:
        Y = Y + np.random.default_rng(args.seed).normal(0, args.noise, Y.shape).astype(np.float32)
    print(f"T {h}x{q} (lightfield.png), L {q}x{w} (tracks_bg.png), widths {widths}, {iterations} iterations, lr {lr}")

    baseline = {"T_error": scale_aligned_error(np.ones_like(T0), T0), "L_error": scale_aligned_error(np.ones_like(L0), L0)}
    print(f"reference: a constant factor scores T error {baseline['T_error']:.4f}, L error {baseline['L_error']:.4f}")
    report, rows = {"constant_factors": baseline}, [[_common.to_rgb_array(m, normalise=True) for m in (T0, L0, Y)]]
    for label, up in VARIANTS.items():
        t0 = time.time()
        fac = DeepMatrixFactorization(
            up, iterations=iterations, lr=lr, widths=widths, seed=args.seed, device=args.device, progress=not args.quick
        )
        r = fac.factorize(torch.from_numpy(Y), rank=q)
        seconds = time.time() - t0
        report[label] = {
            "upsampling": up,
            "misfit": r.misfit,
            "T_error": scale_aligned_error(r.T, T0),
            "L_error": scale_aligned_error(r.L, L0),
            "loss_first": r.losses[0],
            "loss_last": r.losses[-1],
            "seconds": round(seconds, 1),
        }
        m = report[label]
        print(f"{label:8s}: loss {m['loss_first']:.4f} -> {m['loss_last']:.4f}, misfit {m['misfit']:.4f}, "
              f"T error {m['T_error']:.4f}, L error {m['L_error']:.4f} (after the least-squares scale), {seconds:.1f} s",
              flush=True)
        rows.append([_common.to_rgb_array(x, normalise=True) for x in (r.T, r.L, r.product)])
    save_image(_common.tile(rows, zoom=max(1, 256 // w)), out / "factorization.png")
    write_json_atomic(out / "factorization.json", {"size": [h, q, w], "iterations": iterations, "lr": lr,
                                                   "widths": list(widths), "results": report})
    print(f"wrote {out / 'factorization.png'} (rows: ground truth, bilinear, NAS-DIP; columns T, L, T @ L)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
