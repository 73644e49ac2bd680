"""Compare the searched genotype with nasdip-denoise and dip-skip at the search's CPU scale.

Not the benchmark's CPU preset (64x64 crops, width 32, 3 images x 3 seeds, t* from
nasdip bench calibrate): that helper was not on a branch when this ran. Instead, all three
genotypes at width 16 (dip-skip keeps its 4-channel skips), on 32x32 centre crops of the 9
bm3d/gt images, sigma 25, DIP's denoising settings, 300 iterations, seed 0. Each genotype's t*
is estimated on the search's 2 training crops (CBSD68, no test ground truth); we report the test
PSNR at that t* ("Ours") and the oracle best over the iterations ("Ours*").
Results are cached per genotype in compare*.json (--out names this process's file, so several
can run side by side), so a killed run continues.

    PYTHONPATH=. python search/runs/denoise-cpu/compare.py [--data ../shared/data] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from nasdip_zoo import get_genotype
from nasdip_zoo.genotype import write_json_atomic
from nasdip_zoo.restore import DIPRestorer
from nasdip_zoo.search.evaluate import DIPEvaluator, TaskProtocol, estimate_t_star, load_training_images

HERE = Path(__file__).resolve().parent
ITERATIONS, CROP, WIDTH, SEED = 300, 32, 16, 0


def genotypes() -> dict[str, object]:
    best = sorted((HERE / "controller" / "cards").glob("*-1.json")) + sorted((HERE / "random" / "cards").glob("*-1.json"))
    out = {
        "nasdip-denoise": get_genotype("nasdip-denoise").replace(channels=WIDTH, skip_channels=WIDTH),
        "dip-skip": get_genotype("dip-skip").replace(channels=WIDTH, skip_channels=4),
    }
    for p in best:
        out[p.stem] = get_genotype(str(p))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--out", default="compare.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = Path(args.data)
    train = load_training_images(data / "cbsd68", crop=CROP, images=2)
    test_names = sorted(p.stem for p in (data / "bm3d" / "gt").glob("*.png"))
    test = load_training_images(data / "bm3d" / "gt", crop=CROP, images=len(test_names))
    protocol = TaskProtocol("denoise")
    out_path = HERE / args.out
    done = {k for p in HERE.glob("compare*.json") for k in json.loads(p.read_text())}
    results = json.loads(out_path.read_text()) if out_path.is_file() else {}
    for name, g in genotypes().items():
        if (args.only and name not in args.only) or name in done:
            continue
        t0 = time.time()
        tr = DIPEvaluator(train, protocol, iterations=ITERATIONS)(g, seed=SEED)
        restorer = DIPRestorer(g, iterations=ITERATIONS, seed=SEED, device="cpu", progress=False)
        curves = []
        for i, gt in enumerate(test):
            obs, kw = protocol.degrade(gt, i)
            curves.append(restorer.restore(obs, ground_truth=gt, **kw).ema_psnrs)
        at_t = [c[tr.t_star - 1] for c in curves]
        results[name] = {
            "genotype": g.to_dict(), "describe": g.describe(), "train_t_star": tr.t_star, "train_reward": tr.reward,
            "test_images": test_names, "test_psnr_at_t_star": at_t, "test_mean_at_t_star": sum(at_t) / len(at_t),
            "test_oracle": [max(c) for c in curves], "test_mean_oracle": sum(max(c) for c in curves) / len(curves),
            "test_mean_curve_argmax": estimate_t_star(curves)[0], "seconds": time.time() - t0,
        }
        write_json_atomic(out_path, results)
        print(f"{name}: t*={tr.t_star} test {results[name]['test_mean_at_t_star']:.2f} dB "
              f"(oracle {results[name]['test_mean_oracle']:.2f}) in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
