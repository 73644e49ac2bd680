"""The NAS-DIP search space as an object: the decisions a controller samples, one token each.

Cell decisions follow paper Fig. 3 (upsample op, feature transformation, kernel size, dilation,
activation) plus the two released-code switches (activation after the upsample op, transform
before the upsample op). Connection decisions are one bit per level offset (the paper's shared
pattern, 2**(2d-1) patterns) or one bit per matrix entry (the released explicit form, 2**(d*d)).
Pure data: no torch.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

from .genotype import (
    ACTIVATIONS,
    DILATIONS,
    KERNEL_SIZES,
    TRANSFORMS,
    UPSAMPLE_OPS,
    Backbone,
    Connections,
    Genotype,
    UpsamplingCell,
)

__all__ = ["Decision", "SearchSpace"]


@dataclass(frozen=True)
class Decision:
    """One token of an architecture: its name, its group ('cell' or 'connections') and its choices."""

    name: str
    group: str
    choices: tuple[Any, ...]

    @property
    def size(self) -> int:
        return len(self.choices)


_CELL_DECISIONS = (
    ("upsample", UPSAMPLE_OPS),
    ("transform", TRANSFORMS),
    ("kernel_size", KERNEL_SIZES),
    ("dilation", DILATIONS),
    ("activation", ACTIVATIONS),
    ("activation_after_upsample", (True, False)),
    ("transform_first", (False, True)),
)


class SearchSpace:
    """Decisions, sizes, sampling and the token <-> genotype mapping of the NAS-DIP space.

    ``connections``: 'shared' (paper) or 'explicit' (released d x d matrix). ``backbone`` and
    ``sum_chunks`` are fixed for the whole space. Invalid token combinations (a pixel shuffle with
    no transform, say) are rejected by :meth:`decode` and never produced by :meth:`sample`.
    """

    def __init__(self, connections: str = "shared", backbone: Backbone | None = None, sum_chunks: int = 4) -> None:
        if connections not in ("shared", "explicit"):
            raise ValueError(f"connections={connections!r} is not allowed; choose 'shared' or 'explicit'")
        self.connection_form = connections
        self.backbone = backbone or Backbone()
        self.sum_chunks = sum_chunks
        d = self.backbone.depth
        decisions = [Decision(n, "cell", tuple(c)) for n, c in _CELL_DECISIONS]
        if connections == "shared":
            decisions += [Decision(f"offset{o:+d}" if o else "offset0", "connections", (0, 1)) for o in range(-(d - 1), d)]
        else:
            decisions += [Decision(f"m{r}{c}", "connections", (0, 1)) for r in range(d) for c in range(d)]
        self.decisions: tuple[Decision, ...] = tuple(decisions)

    def __repr__(self) -> str:
        return (
            f"SearchSpace(connections={self.connection_form!r}, depth={self.backbone.depth}, "
            f"cells={self.cell_space_size()}, connection_patterns={self.connection_space_size()})"
        )

    # ------------------------------------------------------------------ sizes
    @property
    def num_cell_decisions(self) -> int:
        return len(_CELL_DECISIONS)

    @cached_property
    def _valid_cell_tokens(self) -> tuple[tuple[int, ...], ...]:
        cell_decisions = self.decisions[: self.num_cell_decisions]
        valid = []
        for tokens in itertools.product(*(range(d.size) for d in cell_decisions)):
            try:
                self._decode_cell(tokens)
            except ValueError:
                continue
            valid.append(tokens)
        return tuple(valid)

    def cell_space_size(self) -> int:
        """Number of valid token combinations of the upsampling cell."""
        return len(self._valid_cell_tokens)

    def connection_space_size(self) -> int:
        """2**(2d-1) shared patterns, or 2**(d*d) explicit matrices."""
        d = self.backbone.depth
        return 2 ** (2 * d - 1) if self.connection_form == "shared" else 2 ** (d * d)

    def size(self) -> int:
        return self.cell_space_size() * self.connection_space_size()

    # ------------------------------------------------------------------ tokens <-> genotype
    def _decode_cell(self, tokens: Sequence[int]) -> UpsamplingCell:
        values = {d.name: d.choices[t] for d, t in zip(self.decisions, tokens)}
        cell = UpsamplingCell(sum_chunks=self.sum_chunks, **values)
        cell.channel_plan(self.backbone.channels, self.backbone.channels)
        return cell

    def decode(self, tokens: Sequence[int]) -> Genotype:
        """The genotype of a token sequence; ValueError for a wrong length, range or invalid cell."""
        tokens = list(tokens)
        if len(tokens) != len(self.decisions):
            raise ValueError(f"expected {len(self.decisions)} tokens, got {len(tokens)}")
        for d, t in zip(self.decisions, tokens):
            if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < d.size:
                raise ValueError(f"token for {d.name!r} is {t!r}; it must be an integer in 0..{d.size - 1}")
        k = self.num_cell_decisions
        cell = self._decode_cell(tokens[:k])
        bits = tokens[k:]
        if self.connection_form == "shared":
            d = self.backbone.depth
            conns = Connections(offsets=tuple(o for o, b in zip(range(-(d - 1), d), bits) if b))
        else:
            d = self.backbone.depth
            conns = Connections(matrix=tuple(tuple(bits[r * d : (r + 1) * d]) for r in range(d)))
        return Genotype(cell=cell, connections=conns, backbone=self.backbone)

    def encode(self, genotype: Genotype) -> list[int]:
        """The token sequence of a genotype of this space (inverse of :meth:`decode`)."""
        if genotype.backbone != self.backbone:
            raise ValueError("genotype.backbone differs from this search space's backbone; build the space with it")
        if genotype.cell.sum_chunks != self.sum_chunks:
            raise ValueError(f"genotype.cell.sum_chunks={genotype.cell.sum_chunks} but the space uses {self.sum_chunks}")
        if genotype.connections.form != self.connection_form:
            raise ValueError(
                f"genotype uses {genotype.connections.form} connections but this space is {self.connection_form!r}; "
                f"build SearchSpace(connections={genotype.connections.form!r})"
            )
        cell = genotype.cell
        tokens = [d.choices.index(getattr(cell, d.name)) for d in self.decisions[: self.num_cell_decisions]]
        d = self.backbone.depth
        if self.connection_form == "shared":
            offs = set(genotype.connections.offsets)
            tokens += [int(o in offs) for o in range(-(d - 1), d)]
        else:
            tokens += [genotype.matrix[r][c] for r in range(d) for c in range(d)]
        return tokens

    def sample_tokens(self, rng: random.Random | int | None = None) -> list[int]:
        """Uniform over valid cells and over connection patterns."""
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        cell = list(rng.choice(self._valid_cell_tokens))
        return cell + [rng.randrange(2) for _ in self.decisions[self.num_cell_decisions :]]

    def sample(self, rng: random.Random | int | None = None) -> Genotype:
        """A uniformly random valid genotype."""
        return self.decode(self.sample_tokens(rng))

    def is_valid(self, tokens: Sequence[int]) -> bool:
        try:
            self.decode(tokens)
        except ValueError:
            return False
        return True
