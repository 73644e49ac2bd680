"""Unpaired image-to-image translation (CycleGAN) with NAS-DIP generators, in one compact loop.

Two generators (NAS-DIP, via the drop-in ``define_G``), two PatchGAN discriminators, least-squares GAN
losses, cycle-consistency and identity losses, Adam(2e-4, betas (0.5, 0.999)), as in Zhu et al. 2017.

    python examples/cyclegan_generator.py --quick                 # CPU, small crops, ~1-2 minutes
    python examples/cyclegan_generator.py --domain-a A/ --domain-b B/ --size 256 --iterations 100000 \
        --ngf 64 --out runs/a2b                                   # a real run (GPU)

Writes ``samples_XXXXXX.png`` (rows: A, G_AB(A), G_BA(G_AB(A)); B, G_BA(B), G_AB(G_BA(B))), ``losses.csv``
and ``checkpoint.safetensors`` (all four networks; ``--resume`` continues from it) into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import _common  # also puts the checkout on sys.path
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from nasdip_zoo.imageio import atomic_write, load_image, save_image
from nasdip_zoo.integrations.cyclegan import define_G, init_weights
from nasdip_zoo.restore import resolve_device

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class PatchDiscriminator(nn.Module):
    """A 70x70-style PatchGAN (n_layers conv4x4 blocks, instance norm): one realness score per patch."""

    def __init__(self, channels: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = ndf
        for i in range(1, n_layers + 1):
            nxt = ndf * min(2**i, 8)
            layers += [nn.Conv2d(width, nxt, 4, 2 if i < n_layers else 1, 1), nn.InstanceNorm2d(nxt), nn.LeakyReLU(0.2)]
            width = nxt
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Folder:
    """All images of a folder in memory (RGB in [-1, 1]), short side scaled to ``short_side``; random
    ``size`` crops with horizontal flips."""

    def __init__(self, folder: Path, size: int, short_side: int | None) -> None:
        files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise SystemExit(f"error: no images in {folder}")
        self.images = []
        for f in files:
            im = load_image(f).convert("RGB")
            if short_side:
                s = short_side / min(im.size)
                im = im.resize((max(size, round(im.width * s)), max(size, round(im.height * s))), Image.LANCZOS)
            if min(im.size) < size:
                raise SystemExit(f"error: {f} is smaller than the crop size {size}; lower --size")
            self.images.append(torch.from_numpy(np.asarray(im, np.float32) / 127.5 - 1).permute(2, 0, 1))
        self.size = size

    def batch(self, n: int, rng: random.Random) -> torch.Tensor:
        out = []
        for _ in range(n):
            im = rng.choice(self.images)
            y, x = rng.randint(0, im.shape[1] - self.size), rng.randint(0, im.shape[2] - self.size)
            crop = im[:, y : y + self.size, x : x + self.size]
            out.append(crop.flip(-1) if rng.random() < 0.5 else crop)
        return torch.stack(out)


def lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))


def save_samples(path: Path, a: torch.Tensor, b: torch.Tensor, g_ab: nn.Module, g_ba: nn.Module) -> None:
    with torch.no_grad():
        fake_b, fake_a = g_ab(a), g_ba(b)
        rows = [a, fake_b, g_ba(fake_b), b, fake_a, g_ab(fake_a)]
    grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)  # 3 x (6 H) x (n W)
    save_image(((grid + 1) / 2).clamp(0, 1), path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="benchmark data folder (default: ../shared/data beside the checkout)")
    p.add_argument("--domain-a", help="folder of domain A images (default: DATA/set5/x4_GT)")
    p.add_argument("--domain-b", help="folder of domain B images (default: DATA/bm3d/gt)")
    p.add_argument("--out", default="runs/cyclegan", help="output folder")
    p.add_argument("--quick", action="store_true", help="small CPU run: 32 px crops, ngf 8, 150 iterations")
    p.add_argument("--size", type=int, help="crop size (quick: 32, else 256)")
    p.add_argument("--iterations", type=int, help="training iterations (quick: 150, else 20000)")
    p.add_argument("--ngf", type=int, help="generator width (quick: 8, else 64)")
    p.add_argument("--ndf", type=int, help="discriminator width (quick: 8, else 64)")
    p.add_argument("--lr", type=float, help="Adam learning rate (CycleGAN: 2e-4; quick: 1e-3 so 150 steps show the trend)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--genotype", default="nasdip-denoise", help="zoo name or genotype JSON (dip-skip for DIP's U-Net)")
    p.add_argument("--norm", default="instance", choices=["batch", "instance", "none"])
    p.add_argument("--lambda-cycle", type=float, default=10.0)
    p.add_argument("--lambda-identity", type=float, default=0.5, help="relative to --lambda-cycle, as CycleGAN")
    p.add_argument("--sample-every", type=int, help="iterations between sample PNGs (default: iterations // 3)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors")
    _common.add_run_args(p)
    args = p.parse_args(argv)
    _common.apply_threads(args)

    size = args.size or (32 if args.quick else 256)
    iterations = args.iterations or (150 if args.quick else 20000)
    ngf = args.ngf or (8 if args.quick else 64)
    ndf = args.ndf or (8 if args.quick else 64)
    lr = args.lr or (1e-3 if args.quick else 2e-4)
    for name, v in (("size", size), ("iterations", iterations), ("ngf", ngf), ("ndf", ndf)):
        if v < 1:
            raise SystemExit(f"error: --{name} must be positive")
    data = _common.data_dir(args.data) if not (args.domain_a and args.domain_b) else None
    folder_a = Path(args.domain_a) if args.domain_a else data / "set5" / "x4_GT"
    folder_b = Path(args.domain_b) if args.domain_b else data / "bm3d" / "gt"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    dev = resolve_device(args.device)

    short = 2 * size if args.quick else None  # quick: whole scenes fit a few crops, not just texture
    dom_a, dom_b = Folder(folder_a, size, short), Folder(folder_b, size, short)
    g_ab = define_G(3, 3, ngf, "nasdip", norm=args.norm, genotype=args.genotype).to(dev)
    g_ba = define_G(3, 3, ngf, "nasdip", norm=args.norm, genotype=args.genotype).to(dev)
    d_a = init_weights(PatchDiscriminator(3, ndf)).to(dev)
    d_b = init_weights(PatchDiscriminator(3, ndf)).to(dev)
    nets = {"g_ab": g_ab, "g_ba": g_ba, "d_a": d_a, "d_b": d_b}
    start = 0
    ckpt = out / "checkpoint.safetensors"
    if args.resume:
        from safetensors.torch import load_file

        if not ckpt.is_file():
            raise SystemExit(f"error: --resume but no checkpoint at {ckpt}")
        state = load_file(str(ckpt))
        for name, net in nets.items():
            net.load_state_dict({k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(name + ".")})
        start = int(state["step"].item())
    betas = (0.5, 0.999)
    opt_g = torch.optim.Adam(list(g_ab.parameters()) + list(g_ba.parameters()), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(list(d_a.parameters()) + list(d_b.parameters()), lr=lr, betas=betas)
    lam_c, lam_i = args.lambda_cycle, args.lambda_cycle * args.lambda_identity
    fixed_a, fixed_b = dom_a.batch(4, random.Random(1)).to(dev), dom_b.batch(4, random.Random(2)).to(dev)
    sample_every = args.sample_every or max(1, iterations // 3)
    print(f"A: {folder_a} ({len(dom_a.images)} images)  B: {folder_b} ({len(dom_b.images)} images)  "
          f"crops {size}px, ngf {ngf}, genotype {args.genotype}, norm {args.norm}, {iterations} iterations")

    def save_checkpoint(step: int) -> None:
        from safetensors.torch import save_file

        state = {f"{n}.{k}": v.detach().cpu().contiguous() for n, net in nets.items() for k, v in net.state_dict().items()}
        state["step"] = torch.tensor([step])
        atomic_write(ckpt, lambda tmp: save_file(state, tmp))

    log: list[dict[str, float]] = []
    t0 = time.time()
    step = start
    try:
        for step in range(start, iterations):
            real_a, real_b = dom_a.batch(args.batch_size, rng).to(dev), dom_b.batch(args.batch_size, rng).to(dev)
            # generators: fool both discriminators, reconstruct through the cycle, keep same-domain images
            fake_b, fake_a = g_ab(real_a), g_ba(real_b)
            loss_gan = lsgan(d_b(fake_b), True) + lsgan(d_a(fake_a), True)
            loss_cycle = F.l1_loss(g_ba(fake_b), real_a) + F.l1_loss(g_ab(fake_a), real_b)
            loss_id = F.l1_loss(g_ab(real_b), real_b) + F.l1_loss(g_ba(real_a), real_a)
            loss_g = loss_gan + lam_c * loss_cycle + lam_i * loss_id
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            # discriminators: real vs (detached) fake, halved as CycleGAN does
            loss_d = 0.5 * (lsgan(d_a(real_a), True) + lsgan(d_a(fake_a.detach()), False))
            loss_d = loss_d + 0.5 * (lsgan(d_b(real_b), True) + lsgan(d_b(fake_b.detach()), False))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            log.append({"step": step, "G_gan": loss_gan.item(), "cycle": loss_cycle.item(), "identity": loss_id.item(), "D": loss_d.item()})
            if step % 10 == 0 or step == iterations - 1:
                r = log[-1]
                print(f"step {step:6d}  G_gan {r['G_gan']:.3f}  cycle {r['cycle']:.3f}  identity {r['identity']:.3f}  D {r['D']:.3f}", flush=True)
            if (step + 1) % sample_every == 0 or step == iterations - 1:
                save_samples(out / f"samples_{step + 1:06d}.png", fixed_a, fixed_b, g_ab, g_ba)
                save_checkpoint(step + 1)
    except KeyboardInterrupt:
        print(f"\ninterrupted at step {step}; saving a checkpoint (resume with --resume)")
        save_samples(out / f"samples_{step:06d}.png", fixed_a, fixed_b, g_ab, g_ba)
        save_checkpoint(step)
    if not log:
        print("nothing to do: the checkpoint is already at --iterations")
        return 0
    keys = ["G_gan", "cycle", "identity", "D"]
    csv = "step," + ",".join(keys) + "\n" + "".join(f"{r['step']}," + ",".join(f"{r[k]:.6f}" for k in keys) + "\n" for r in log)
    atomic_write(out / "losses.csv", lambda tmp: Path(tmp).write_text(csv))
    n = max(1, len(log) // 5)
    first = {k: sum(r[k] for r in log[:n]) / n for k in keys}
    last = {k: sum(r[k] for r in log[-n:]) / n for k in keys}
    print(f"mean of the first {n} vs the last {n} iterations: " + ", ".join(f"{k} {first[k]:.3f} -> {last[k]:.3f}" for k in keys))
    print(f"done in {time.time() - t0:.1f} s; samples and checkpoint in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
