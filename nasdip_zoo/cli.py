"""The ``nasdip`` command line: ``genotypes``, ``restore`` and ``demo``.

Bad input (missing or non-image files, a mask of the wrong size, an unknown genotype, a scale not
in 2/4/8, an unwritable output) gives one line on stderr and exit code 2, never a traceback, and
never a half-written output file (outputs are written to a temp file and renamed into place).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import NoReturn, Sequence

from . import __version__, hub

# the demo: nasdip-denoise's architecture at width 32 on the bundled 96x96 image, sized to take
# about a minute on one CPU core (measured numbers are in the README's "Restoring images"); one
# thread by default because this small network gains nothing from more and threads spin badly
# when the cores are busy
DEMO_IMAGE = Path(__file__).resolve().parent / "data" / "astronaut96.png"
DEMO_GENOTYPE = "nasdip-denoise"
DEMO_CHANNELS = 32
DEMO_ITERATIONS = 500
DEMO_SIGMA = 25 / 255
DEMO_NOISE_SEED = 0


class UsageError(Exception):
    """A bad input that the user can fix: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as ONE line (and exit code 2), without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _cmd_genotypes(args: argparse.Namespace) -> int:
    from .network import build_nasdip, count_parameters
    from .zoo import get_card, list_genotypes

    rows = []
    for name in list_genotypes(args.task):
        card = get_card(name)
        g = card.genotype
        params = count_parameters(build_nasdip(g, card.dip.input_channels, card.out_channels))
        t_star = ", ".join(f"{t} {s.t_star}" for t, s in card.settings.items())
        rows.append((name, card.task, g.cell.describe(), g.connections.describe(g.backbone.depth), f"{params:,}", t_star))
    header = ("name", "task", "upsampling cell", "cross-level connections", "parameters", "t*")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return 0


# ----------------------------------------------------------------------------------------------


def _check_output(path: str) -> Path:
    """Fail before any work when the output cannot be written (folder, permission, extension)."""
    from PIL import Image

    p = Path(path)
    if p.is_dir():
        raise UsageError(f"output {p} is a folder; give a file name such as {p / 'restored.png'}")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"cannot write {p}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write {p}: folder {folder} is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise UsageError(f"cannot write {p}: the file is not writable")
    if Image.registered_extensions().get(p.suffix.lower()) is None:
        raise UsageError(f"cannot write {p}: unknown image extension {p.suffix!r} (use .png, .jpg, .tif, ...)")
    return p


def _set_threads(n: int | None) -> None:
    if n is not None:
        if n < 1:
            raise UsageError(f"--threads must be >= 1, got {n}")
        import torch

        torch.set_num_threads(n)  # this process's own setting: the CLI owns its process


def _cmd_restore(args: argparse.Namespace) -> int:
    from .imageio import load_image, save_image
    from .restore import DIPRestorer

    if Path(args.input).is_dir():  # folder mode (issue 7): INPUT folder -> OUTPUT folder, local or Ray
        from .folder import cmd_restore_folder

        return cmd_restore_folder(args)
    out = _check_output(args.output)
    if args.checkpoint is not None:
        ck = Path(args.checkpoint)
        if not (ck.parent if str(ck.parent) else Path(".")).is_dir():
            raise UsageError(f"checkpoint folder {ck.parent} does not exist")
    _set_threads(args.threads)
    observation = load_image(args.input)
    mask = None
    if args.task == "inpaint":
        if args.mask is None:
            raise UsageError("inpainting needs --mask MASK (white = known pixel, black = hole)")
        mask = load_image(args.mask)
        if mask.size != observation.size:
            raise UsageError(f"mask is {mask.size[0]}x{mask.size[1]} but the image is {observation.size[0]}x{observation.size[1]}")
    elif args.mask is not None:
        raise UsageError("--mask is only for inpaint")
    if args.task == "sr" and args.scale is None:
        raise UsageError("sr needs --scale 2, 4 or 8")
    if args.task != "sr" and args.scale is not None:
        raise UsageError("--scale is only for sr")
    restorer = DIPRestorer(
        args.genotype or f"nasdip-{args.task}",
        iterations=args.iterations,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
        fast=args.fast,
    )
    result = restorer.restore(
        observation, args.task, scale=args.scale, mask=mask, checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
    )
    save_image(result.output, out)
    if not args.quiet:
        print(f"{result.iterations} iterations in {result.seconds:.1f} s ({result.iterations_per_second:.2f} it/s), "
              f"{result.rollbacks} rollbacks", file=sys.stderr)
    print(out)
    return 0


def _label(img, text: str):
    from PIL import Image, ImageDraw, ImageFont

    pad = 14
    canvas = Image.new("RGB", (img.width, img.height + pad), "white")
    canvas.paste(img.convert("RGB"), (0, pad))
    ImageDraw.Draw(canvas).text((2, 1), text, fill="black", font=ImageFont.load_default())
    return canvas


def demo_figure(degraded, restored, original, psnr_degraded: float, psnr_restored: float, zoom: int = 2):
    """Side-by-side PIL image: degraded | restored | original, each labelled (PSNR in dB)."""
    from PIL import Image

    panels = [
        (degraded, f"noisy {psnr_degraded:.2f} dB"),
        (restored, f"restored {psnr_restored:.2f} dB"),
        (original, "original"),
    ]
    tiles = [_label(im.resize((im.width * zoom, im.height * zoom), Image.NEAREST), t) for im, t in panels]
    gap = 4
    fig = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), tiles[0].height), "white")
    x = 0
    for t in tiles:
        fig.paste(t, (x, 0))
        x += t.width + gap
    return fig


def _cmd_demo(args: argparse.Namespace) -> int:
    from .imageio import from_tensor, load_image, save_image, to_tensor
    from .metrics import psnr
    from .operators import add_gaussian_noise
    from .restore import DIPRestorer
    from .zoo import get_genotype

    out = _check_output(args.output)
    _set_threads(args.threads if args.threads is not None else 1)
    original = load_image(DEMO_IMAGE)
    clean, _ = to_tensor(original)
    noisy = add_gaussian_noise(clean, DEMO_SIGMA, seed=DEMO_NOISE_SEED)
    genotype = get_genotype(DEMO_GENOTYPE).with_width(DEMO_CHANNELS)
    t0 = time.perf_counter()
    restorer = DIPRestorer(genotype, iterations=args.iterations, seed=args.seed, device=args.device,
                           progress=not args.quiet, name=f"{DEMO_GENOTYPE}@{DEMO_CHANNELS}")
    result = restorer.restore(noisy, "denoise", ground_truth=clean)  # the truth only feeds the bar's PSNR
    seconds = time.perf_counter() - t0
    pil = lambda t: from_tensor(t, to_tensor(original)[1])  # noqa: E731
    p_noisy, p_out = psnr(noisy, clean), psnr(result.output, clean)
    fig = demo_figure(pil(noisy), pil(result.output), original, p_noisy, p_out)
    save_image(fig, out)
    print(f"denoised the bundled 96x96 astronaut (sigma 25): noisy {p_noisy:.2f} dB -> restored {p_out:.2f} dB "
          f"({DEMO_GENOTYPE} at width {DEMO_CHANNELS}, {result.iterations} iterations, {seconds:.0f} s on {result.settings['device']})",
          file=sys.stderr)
    print(out)
    return 0


# ----------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _scale(text: str) -> int:
    if text not in ("2", "4", "8"):
        raise argparse.ArgumentTypeError(f"scale must be 2, 4 or 8, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``nasdip`` (subcommands genotypes, restore, demo)."""
    parser = _Parser(prog="nasdip", description="NAS-DIP searched deep image priors.")
    parser.add_argument("--version", action="version", version=f"nasdip-zoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("genotypes", help="list the zoo's genotypes (name, task, cell, connections, parameters, t*)")
    p.add_argument("--task", choices=["sr", "denoise", "inpaint"], help="only genotypes with settings for this task")
    p.set_defaults(func=_cmd_genotypes)
    hub.add_parser(sub)

    def common(q: argparse.ArgumentParser, device: str = "auto", threads: str = "torch's choice") -> None:
        q.add_argument("--seed", type=int, default=0, help="seed of the input noise and the network (default 0)")
        q.add_argument("--device", default=device, help=f"auto (CUDA if available, else CPU), cpu, cuda, cuda:N (default {device})")
        q.add_argument("--threads", type=int, default=None, help=f"CPU threads for torch (default {threads})")
        q.add_argument("--quiet", action="store_true", help="no progress bar or summary")

    r = sub.add_parser("restore", help="restore an image: denoise, super-resolve (sr) or inpaint")
    r.add_argument("task", choices=["denoise", "sr", "inpaint"])
    r.add_argument("input", help="the degraded image (noisy, low-resolution, or with holes)")
    r.add_argument("-o", "--output", required=True, help="where to write the restored image")
    r.add_argument("--genotype", help="zoo name or JSON path (default: nasdip-<task>)")
    r.add_argument("--scale", type=_scale, help="sr factor: 2, 4 or 8")
    r.add_argument("--mask", help="inpaint mask image of the same size: white = known pixel, black = hole")
    r.add_argument("--iterations", type=_positive_int, help="default: the genotype card's t* (full-size images)")
    r.add_argument("--checkpoint", help="save progress here (safetensors + .json) and resume from it if it exists")
    r.add_argument("--checkpoint-every", type=_positive_int, default=100, help="iterations between checkpoints (100)")
    common(r)
    from .folder import add_folder_arguments

    add_folder_arguments(r)
    r.set_defaults(func=_cmd_restore)

    d = sub.add_parser("demo", help="denoise the bundled image in about a minute on a CPU; writes a side-by-side PNG")
    d.add_argument("-o", "--output", default="nasdip-demo.png", help="the side-by-side PNG (default nasdip-demo.png)")
    d.add_argument("--iterations", type=_positive_int, default=DEMO_ITERATIONS, help=f"default {DEMO_ITERATIONS}")
    common(d, device="cpu", threads="1")
    d.set_defaults(func=_cmd_demo)
    from .bench.cli import add_parser as add_bench_parser
    from .search.cli import add_parser as add_search_parser

    add_bench_parser(sub)
    add_search_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nasdip`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ValueError, OSError) as e:
        print(f"nasdip: error: {e}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasdip: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as e:  # e.g. RestorationDiverged: not the user's input, but still one line
        print(f"nasdip: failed: {e}".replace("\n", " "), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
