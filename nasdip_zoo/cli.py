"""The ``nasdip`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import __version__


class UsageError(Exception):
    """A bad input that the user can fix: printed as one line, exit code 2."""


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nasdip", description="NAS-DIP searched deep image priors.")
    parser.add_argument("--version", action="version", version=f"nasdip-zoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("genotypes", help="list the zoo's genotypes (name, task, cell, connections, parameters, t*)")
    p.add_argument("--task", choices=["sr", "denoise", "inpaint"], help="only genotypes with settings for this task")
    p.set_defaults(func=_cmd_genotypes)
    from .search.cli import add_parser as add_search_parser

    add_search_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ValueError, FileNotFoundError) as e:
        print(f"nasdip: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
