"""DoubleDIP dehazing with NAS-DIP generators vs DoubleDIP's U-Net (paper Sec. 4.3, Fig. 8).

Dehazes DoubleDIP's two real hazy photographs (../shared/data/doubledip) with the airlight values of
DoubleDIP's demo, once with DIP's U-Net generators (genotype ``dip-skip``) and once with the searched
denoising network (``nasdip-denoise``), and writes J, t and a side-by-side figure per image.

    python examples/dehazing.py --quick        # CPU: optimise at 64 px, 150 iterations, width 8 (~1-2 min)
    python examples/dehazing.py --device cuda  # DoubleDIP's settings: < 800 px, 4000 iterations, width 128

There is no haze-free ground truth for these photographs; the figure is the comparison (as in the paper).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _common

from nasdip_zoo.imageio import load_image, save_image, to_tensor
from nasdip_zoo.integrations.doubledip import DoubleDIPDehazer

# DoubleDIP's dehazing.py demo values (Bahat & Irani's airlight estimates), RGB in [0, 1]; see SOURCES.md
AIRLIGHT = {
    "hongkong": (0.5600084, 0.64564645, 0.72515032),
    "tiananmen": (0.71863767, 0.70432067, 0.62480165),
}
VARIANTS = {"unet": "dip-skip", "nasdip": "nasdip-denoise"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="benchmark data folder (default: ../shared/data beside the checkout)")
    p.add_argument("--images", nargs="+", choices=sorted(AIRLIGHT), help="(quick: tiananmen; else both)")
    p.add_argument("--out", default="runs/dehazing", help="output folder")
    p.add_argument("--quick", action="store_true", help="small CPU run")
    p.add_argument("--size", type=int, help="longest side for the optimisation (quick: 64, else 799 as DoubleDIP)")
    p.add_argument("--iterations", type=int, help="iterations per variant (quick: 150, else 4000)")
    p.add_argument("--channels", type=int, help="generator width (quick: 8, else the zoo's 128)")
    p.add_argument("--airlight", default="fixed", choices=["fixed", "dark_channel", "generated"])
    _common.add_run_args(p, device="auto")
    args = p.parse_args(argv)
    _common.apply_threads(args)
    size = args.size or (64 if args.quick else 799)
    iterations = args.iterations or (150 if args.quick else 4000)
    channels = args.channels or (8 if args.quick else None)
    images = args.images or (["tiananmen"] if args.quick else sorted(AIRLIGHT))
    data = _common.data_dir(args.data) / "doubledip"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    for name in images:
        hazy, _ = to_tensor(load_image(data / f"{name}.png").convert("RGB"))
        airlight = AIRLIGHT[name] if args.airlight != "dark_channel" else None
        row_j, row_t = [_common.to_rgb_array(hazy)], [None]
        for label, genotype in VARIANTS.items():
            dehazer = DoubleDIPDehazer(
                genotype, airlight=args.airlight, iterations=iterations, channels=channels,
                max_size=size, seed=args.seed, device=args.device, progress=not args.quick,
            )
            t0 = time.time()
            r = dehazer.dehaze(hazy, airlight=airlight)
            a = [round(v, 3) for v in r.A.mean(dim=(2, 3)).flatten().tolist()]
            print(f"{name} {label:6s} ({genotype}): loss {r.losses[0]:.5f} -> {r.losses[-1]:.5f}, kept iteration "
                  f"{r.best_iteration}, A {a}, {time.time() - t0:.1f} s", flush=True)
            save_image(r.J, out / f"{name}_{label}_J.png")
            save_image(r.t, out / f"{name}_{label}_t.png")
            row_j.append(_common.to_rgb_array(r.J))
            row_t.append(_common.to_rgb_array(r.t))
        row_t[0] = 255 + 0 * row_j[0]  # blank cell under the hazy input
        figure = _common.tile([row_j, row_t])
        save_image(figure, out / f"{name}_comparison.png")
        print(f"wrote {out / f'{name}_comparison.png'} (top: hazy, J U-Net, J NAS-DIP; bottom: t U-Net, t NAS-DIP)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
