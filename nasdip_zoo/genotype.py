"""The genotype: one immutable, JSON-serialisable description of a NAS-DIP architecture.

Pure data (no torch). A :class:`Genotype` is an upsampling cell (paper Sec. 3.2, Fig. 3), a
pattern of cross-level connections (Sec. 3.3, Fig. 4) and the U-Net backbone they sit in, so the
DIP "skip" baseline is a genotype too. ``network.build_nasdip`` turns one into an ``nn.Module``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ._files import atomic_write

SCHEMA_VERSION = 1

# --- the choices of the upsampling-cell search space (paper Fig. 3) -------------------------
UPSAMPLE_OPS: tuple[str, ...] = ("bilinear", "bicubic", "nearest", "pixel_shuffle", "transposed_conv")
TRANSFORMS: tuple[str, ...] = (
    "conv",
    "transposed_conv",
    "channel_sum",
    "separable_conv",
    "depthwise_conv",
    "identity",
)
KERNEL_SIZES: tuple[int, ...] = (1, 3, 5, 7)
DILATIONS: tuple[int, ...] = (1, 2, 3)
ACTIVATIONS: tuple[str, ...] = ("none", "relu", "leaky_relu", "selu", "prelu")

# --- backbone choices ------------------------------------------------------------------------
MERGES: tuple[str, ...] = ("sum", "concat")
NORMS: tuple[str, ...] = ("batch", "instance", "none")
PADDINGS: tuple[str, ...] = ("reflection", "zero", "replicate")
OUTPUT_ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh", "none")
BACKBONE_ACTIVATIONS: tuple[str, ...] = ("leaky_relu", "relu", "selu", "prelu", "none")

# The released integer code (model_index 0..323) orders its lists like this.
_RELEASED_PRIMS = ("bilinear", "bicubic", "nearest", "pixel_shuffle")
_RELEASED_TRANSFORMS = ("conv", "transposed_conv", "channel_sum", "separable_conv", "depthwise_conv")
_RELEASED_ACTS = ("none", "relu", "leaky_relu")
MODEL_INDEX_RANGE = range(0, 324)


def _choice(field_name: str, value: Any, allowed: Sequence[Any]) -> None:
    if not any(type(value) is type(a) and value == a for a in allowed):
        raise ValueError(f"{field_name}={value!r} is not allowed; choose one of {list(allowed)}")


def _positive_int(field_name: str, value: Any, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{field_name}={value!r} is not allowed; it must be an integer >= {minimum}")


def _flag(field_name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{field_name}={value!r} is not allowed; it must be true or false")


@dataclass(frozen=True)
class UpsamplingCell:
    """The searched 2x upsampling cell: a spatial upsample op and a feature transformation.

    ``activation`` follows the transformation (when there is one) and, if
    ``activation_after_upsample``, the upsample op too (the released cells do both).
    ``transform_first`` runs the transformation at the low resolution, before the upsample op
    (for ``pixel_shuffle`` the transform then produces 4x the channels, "sub-pixel convolution").
    ``sum_chunks`` is N of ``channel_sum``: the channels are split into N chunks that are summed
    (output channel c = x[c] + x[c + C/N] + ...), then a k x k convolution restores the width.
    """

    upsample: str = "bilinear"
    transform: str = "identity"
    kernel_size: int = 3
    dilation: int = 1
    activation: str = "none"
    activation_after_upsample: bool = True
    transform_first: bool = False
    sum_chunks: int = 4

    def __post_init__(self) -> None:
        _choice("cell.upsample", self.upsample, UPSAMPLE_OPS)
        _choice("cell.transform", self.transform, TRANSFORMS)
        _choice("cell.kernel_size", self.kernel_size, KERNEL_SIZES)
        _choice("cell.dilation", self.dilation, DILATIONS)
        _choice("cell.activation", self.activation, ACTIVATIONS)
        _flag("cell.activation_after_upsample", self.activation_after_upsample)
        _flag("cell.transform_first", self.transform_first)
        _positive_int("cell.sum_chunks", self.sum_chunks, minimum=2)
        if self.upsample == "pixel_shuffle" and self.transform == "identity":
            raise ValueError(
                "cell: upsample='pixel_shuffle' with transform='identity' turns C channels into C/4, "
                "which cannot be merged; choose a transform that restores the width (e.g. 'conv')"
            )

    def channel_plan(self, in_channels: int, out_channels: int) -> tuple[int, int]:
        """(in, out) channels of the feature transformation inside this cell; validates widths."""
        if self.upsample == "pixel_shuffle":
            if self.transform_first:
                t_in, t_out = in_channels, 4 * out_channels
            else:
                if in_channels % 4:
                    raise ValueError(
                        f"cell: pixel_shuffle needs channels divisible by 4, got {in_channels}; "
                        "use a multiple of 4 (e.g. 128)"
                    )
                t_in, t_out = in_channels // 4, out_channels
        elif self.upsample == "transposed_conv":
            # the learnable upsample op sets the width; the transform keeps it
            t_in = t_out = in_channels if self.transform_first else out_channels
        else:
            t_in, t_out = in_channels, out_channels
        if self.transform == "identity" and t_in != t_out:
            raise ValueError(
                f"cell: transform='identity' cannot change channels {t_in} -> {t_out}; "
                "pick a learnable transform or equal in/out channels"
            )
        if self.transform == "channel_sum" and t_in % self.sum_chunks:
            raise ValueError(
                f"cell.sum_chunks={self.sum_chunks}: channel_sum needs the {t_in} input channels of the "
                f"transform divisible by sum_chunks; use channels that are a multiple of {self.sum_chunks}"
            )
        return t_in, t_out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """A short human-readable summary, e.g. 'bicubic + depthwise_conv 5x5, leaky_relu'."""
        parts = [self.upsample]
        if self.transform != "identity":
            kern = f"{self.kernel_size}x{self.kernel_size}"
            if self.dilation > 1:
                kern += f" d{self.dilation}"
            t = f"{self.transform} {kern}"
            if self.transform == "channel_sum":
                t = f"channel_sum/{self.sum_chunks} + conv {kern}"
            parts = [t, self.upsample] if self.transform_first else [self.upsample, t]
        elif self.upsample == "transposed_conv":
            parts = [f"transposed_conv {self.kernel_size}x{self.kernel_size}"]
        text = " + ".join(parts)
        return text + ("" if self.activation == "none" else f", {self.activation}")


@dataclass(frozen=True)
class Connections:
    """Cross-level connections of the decoder merges, in one of two forms.

    * shared pattern (the paper): ``offsets`` is a set of level differences in -(d-1)..(d-1),
      applied at every decoder level; offset = source level - merge level, so 0 is the same-level
      skip, +1 the next coarser encoder feature (brought up), -1 the next finer (brought down).
    * explicit matrix (the released code): ``matrix[r][c]`` is 1 when merge r (r=0 at full
      resolution) receives source c, where sources are [z, enc1, ..., enc_{d-1}].
    """

    offsets: tuple[int, ...] | None = None
    matrix: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        if self.offsets is None and self.matrix is None:
            object.__setattr__(self, "offsets", (0,))  # default: the same-level skip only
        if self.offsets is not None and self.matrix is not None:
            raise ValueError(
                "connections: give exactly one of 'offsets' (shared pattern) or 'matrix' (explicit d x d)"
            )
        if self.offsets is not None:
            offs = tuple(self.offsets)
            for o in offs:
                if not isinstance(o, int) or isinstance(o, bool):
                    raise ValueError(f"connections.offsets contains {o!r}; offsets are integers")
            if len(set(offs)) != len(offs):
                raise ValueError(f"connections.offsets={list(offs)} has repeats; list each offset once")
            object.__setattr__(self, "offsets", tuple(sorted(offs)))
        else:
            rows = self.matrix
            if not isinstance(rows, (list, tuple)) or not rows:
                raise ValueError(f"connections.matrix={rows!r} must be a non-empty square list of 0/1 rows")
            fixed = []
            for r in rows:
                if not isinstance(r, (list, tuple)) or len(r) != len(rows):
                    raise ValueError(
                        f"connections.matrix must be square (d x d); got {len(rows)} rows and a row {r!r}"
                    )
                for v in r:
                    if type(v) is not int or v not in (0, 1):
                        raise ValueError(f"connections.matrix has entry {v!r}; entries are 0 or 1")
                fixed.append(tuple(int(v) for v in r))
            object.__setattr__(self, "matrix", tuple(fixed))

    @property
    def form(self) -> str:
        return "shared" if self.offsets is not None else "explicit"

    def check_depth(self, depth: int) -> None:
        if self.offsets is not None:
            bad = [o for o in self.offsets if abs(o) > depth - 1]
            if bad:
                raise ValueError(
                    f"connections.offsets {bad} are out of range for depth {depth}; "
                    f"allowed offsets are {-(depth - 1)}..{depth - 1}"
                )
        elif len(self.matrix) != depth:
            n = len(self.matrix)
            raise ValueError(
                f"connections.matrix is {n} x {n} but the backbone depth is {depth}; give a {depth} x {depth} matrix"
            )

    def as_matrix(self, depth: int) -> tuple[tuple[int, ...], ...]:
        """The effective d x d matrix (rows = merges fine to coarse, columns = [z, enc1, ...])."""
        self.check_depth(depth)
        if self.matrix is not None:
            return self.matrix
        offs = set(self.offsets)
        return tuple(tuple(int((c - r) in offs) for c in range(depth)) for r in range(depth))

    def to_token(self, depth: int) -> int:
        """The explicit matrix as a d*d-bit integer: bit r*d + c is matrix[r][c] (25 bits at d=5)."""
        m = self.as_matrix(depth)
        return sum(m[r][c] << (r * depth + c) for r in range(depth) for c in range(depth))

    @classmethod
    def from_token(cls, token: int, depth: int) -> "Connections":
        """Inverse of :meth:`to_token`."""
        if not isinstance(token, int) or not 0 <= token < (1 << depth * depth):
            raise ValueError(f"connection token {token!r} must be an integer in [0, 2**{depth * depth})")
        return cls(
            matrix=tuple(tuple((token >> (r * depth + c)) & 1 for c in range(depth)) for r in range(depth)),
        )

    def to_dict(self) -> dict[str, Any]:
        if self.offsets is not None:
            return {"offsets": list(self.offsets)}
        return {"matrix": [list(r) for r in self.matrix]}

    def describe(self, depth: int) -> str:
        if self.offsets is not None:
            return "shared " + ("{" + ",".join(f"{o:+d}" if o else "0" for o in self.offsets) + "}")
        m = self.as_matrix(depth)
        if all(m[r][c] == (r == c) for r in range(depth) for c in range(depth)):
            return "same-level only"
        return "matrix " + "/".join("".join(map(str, r)) for r in m)


@dataclass(frozen=True)
class Backbone:
    """The U-Net around the searched parts (NASDIP_FACTS section 1; DIP's skip net with merge='concat').

    ``decoder_convs`` 3x3 convs (each BN + act) follow the merge's BN, then a 1x1 conv + BN + act.
    ``skip_channels`` is the width of the same-level skip (must equal ``channels`` for sum merges).
    """

    depth: int = 5
    channels: int = 128
    skip_channels: int = 128
    merge: str = "sum"
    decoder_convs: int = 2
    norm: str = "batch"
    padding: str = "reflection"
    activation: str = "leaky_relu"
    output_activation: str = "sigmoid"

    def __post_init__(self) -> None:
        _positive_int("backbone.depth", self.depth)
        if self.depth > 8:
            raise ValueError(f"backbone.depth={self.depth} is not allowed; use 1..8")
        _positive_int("backbone.channels", self.channels)
        _positive_int("backbone.skip_channels", self.skip_channels, minimum=0)
        _choice("backbone.merge", self.merge, MERGES)
        _positive_int("backbone.decoder_convs", self.decoder_convs, minimum=0)
        _choice("backbone.norm", self.norm, NORMS)
        _choice("backbone.padding", self.padding, PADDINGS)
        _choice("backbone.activation", self.activation, BACKBONE_ACTIVATIONS)
        _choice("backbone.output_activation", self.output_activation, OUTPUT_ACTIVATIONS)
        if self.merge == "sum" and self.skip_channels not in (0, self.channels):
            raise ValueError(
                f"backbone.skip_channels={self.skip_channels} does not fit merge='sum' with channels="
                f"{self.channels}; a sum merge needs skip_channels == channels (or 0 for no skip)"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Genotype:
    """One point of the NAS-DIP search space: upsampling cell + cross-level connections + backbone."""

    cell: UpsamplingCell = field(default_factory=UpsamplingCell)
    connections: Connections = field(default_factory=Connections)
    backbone: Backbone = field(default_factory=Backbone)

    def __post_init__(self) -> None:
        if not isinstance(self.cell, UpsamplingCell):
            raise ValueError(f"cell={self.cell!r} must be an UpsamplingCell")
        if not isinstance(self.connections, Connections):
            raise ValueError(f"connections={self.connections!r} must be a Connections")
        if not isinstance(self.backbone, Backbone):
            raise ValueError(f"backbone={self.backbone!r} must be a Backbone")
        bb = self.backbone
        self.connections.check_depth(bb.depth)
        self.cell.channel_plan(bb.channels, bb.channels)
        if bb.merge == "concat":
            m = self.connections.as_matrix(bb.depth)
            if any(m[r][c] for r in range(bb.depth) for c in range(bb.depth) if r != c):
                raise ValueError(
                    "connections: cross-level connections need backbone.merge='sum' (residual merges); "
                    "with merge='concat' only the same-level skip is allowed"
                )

    # ----------------------------------------------------------------- convenience
    @property
    def matrix(self) -> tuple[tuple[int, ...], ...]:
        """The effective d x d connection matrix."""
        return self.connections.as_matrix(self.backbone.depth)

    def replace(self, **changes: Any) -> "Genotype":
        """A copy with fields changed; nested fields by prefix, e.g. ``replace(channels=16, kernel_size=3)``."""
        groups: dict[str, dict[str, Any]] = {"cell": {}, "backbone": {}}
        top: dict[str, Any] = {}
        cell_fields = {f.name for f in dataclasses.fields(UpsamplingCell)}
        bb_fields = {f.name for f in dataclasses.fields(Backbone)}
        for key, value in changes.items():
            if key in ("cell", "connections", "backbone"):
                top[key] = value
            elif key in cell_fields:
                groups["cell"][key] = value
            elif key in bb_fields:
                groups["backbone"][key] = value
            else:
                raise ValueError(
                    f"replace(): unknown field {key!r}; cell fields {sorted(cell_fields)}, "
                    f"backbone fields {sorted(bb_fields)}, or 'cell'/'connections'/'backbone'"
                )
        cell = dataclasses.replace(top.get("cell", self.cell), **groups["cell"])
        backbone = dataclasses.replace(top.get("backbone", self.backbone), **groups["backbone"])
        return Genotype(cell=cell, connections=top.get("connections", self.connections), backbone=backbone)

    def with_width(self, channels: int) -> "Genotype":
        """The same architecture at another channel width; skips follow (a sum merge needs equal widths)."""
        _positive_int("channels", channels)
        bb = self.backbone
        skip = (channels if bb.skip_channels else 0) if bb.merge == "sum" else min(bb.skip_channels, channels)
        return self.replace(channels=channels, skip_channels=skip)

    def describe(self) -> str:
        return f"{self.cell.describe()} | {self.connections.describe(self.backbone.depth)}"

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "cell": self.cell.to_dict(),
            "connections": self.connections.to_dict(),
            "backbone": self.backbone.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Genotype":
        """Build from :meth:`to_dict` output (or a genotype card, whose 'genotype' key is used)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a genotype must be a JSON object, got {type(data).__name__}")
        if "genotype" in data and isinstance(data["genotype"], Mapping):
            check_schema_version(data)
            data = data["genotype"]
        check_schema_version(data)
        unknown = set(data) - {"schema_version", "cell", "connections", "backbone"}
        if unknown:
            raise ValueError(
                f"genotype has unknown keys {sorted(unknown)}; allowed: cell, connections, backbone, schema_version"
            )
        return cls(
            cell=_build("cell", UpsamplingCell, data.get("cell", {})),
            connections=_build("connections", Connections, data.get("connections", {"offsets": [0]})),
            backbone=_build("backbone", Backbone, data.get("backbone", {})),
        )

    def to_json(self) -> str:
        return dumps_json(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "Genotype":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not valid genotype JSON: {e}") from None
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the genotype as JSON (atomically: never a half-written file)."""
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Genotype":
        """Read a genotype JSON file (or a genotype card)."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no genotype file at {str(p)!r}")
        return cls.from_json(p.read_text(encoding="utf-8"))

    # ----------------------------------------------------------------- the released integer code
    @classmethod
    def from_model_index(
        cls,
        model_index: int,
        connections: Connections | Sequence[Sequence[int]] | None = None,
        backbone: Backbone | None = None,
    ) -> "Genotype":
        """The released code's integer cell code 0..323 (NASDIP_FACTS section 2) as a genotype."""
        cell = cell_from_model_index(model_index)
        if connections is None:
            connections = Connections()
        elif not isinstance(connections, Connections):
            connections = Connections(matrix=tuple(tuple(r) for r in connections))
        return cls(cell=cell, connections=connections, backbone=backbone or Backbone())

    def model_index(self) -> int | None:
        """The released integer code of this cell, or None if the released code cannot express it."""
        return model_index_of(self.cell)


def cell_from_model_index(model_index: int) -> UpsamplingCell:
    """Decode the released ``model_index`` (0..323) into an :class:`UpsamplingCell`."""
    if not isinstance(model_index, int) or isinstance(model_index, bool) or model_index not in MODEL_INDEX_RANGE:
        raise ValueError(f"model_index={model_index!r} is not allowed; the released code is an integer 0..323")
    common = dict(activation_after_upsample=True, dilation=1, sum_chunks=4)
    if model_index >= 312:  # transposed-conv upsample, identity transform
        return UpsamplingCell(
            upsample="transposed_conv",
            transform="identity",
            kernel_size=KERNEL_SIZES[(model_index // 3) % 4],
            activation=_RELEASED_ACTS[model_index % 3],
            **common,
        )
    m = model_index % 63
    kernel = KERNEL_SIZES[(m // 3) % 4]
    act = _RELEASED_ACTS[m % 3]
    if model_index >= 252:  # pixel shuffle with the transform before the shuffle
        return UpsamplingCell(
            upsample="pixel_shuffle",
            transform=_RELEASED_TRANSFORMS[(m // 12) % 5],
            kernel_size=kernel,
            activation=act,
            transform_first=True,
            **common,
        )
    prim = _RELEASED_PRIMS[model_index // 63]
    transform = "identity" if m >= 60 else _RELEASED_TRANSFORMS[(m // 12) % 5]
    return UpsamplingCell(upsample=prim, transform=transform, kernel_size=kernel, activation=act, **common)


def model_index_of(cell: UpsamplingCell) -> int | None:
    """The inverse of :func:`cell_from_model_index`, or None outside the released code's space."""
    if cell.dilation != 1 or cell.sum_chunks != 4 or not cell.activation_after_upsample:
        return None
    if cell.activation not in _RELEASED_ACTS:
        return None
    a = _RELEASED_ACTS.index(cell.activation)
    k = KERNEL_SIZES.index(cell.kernel_size)
    if cell.upsample == "transposed_conv":
        if cell.transform != "identity" or cell.transform_first:
            return None
        return 312 + k * 3 + a
    if cell.transform == "identity":
        if cell.upsample == "pixel_shuffle" or cell.transform_first:
            return None
        # the released code only reaches identity with kernel 1 (m = 60..62)
        return _RELEASED_PRIMS.index(cell.upsample) * 63 + 60 + a if k == 0 else None
    t = _RELEASED_TRANSFORMS.index(cell.transform)
    m = t * 12 + k * 3 + a
    if cell.transform_first:
        return 252 + m if cell.upsample == "pixel_shuffle" else None
    return _RELEASED_PRIMS.index(cell.upsample) * 63 + m


# ------------------------------------------------------------------------- helpers
def check_schema_version(data: Mapping[str, Any]) -> None:
    """Refuse JSON written by a newer (or unknown) schema rather than misread it."""
    v = data.get("schema_version", SCHEMA_VERSION)
    if v != SCHEMA_VERSION:
        raise ValueError(
            f"schema_version={v!r} is not supported by this nasdip-zoo (it reads version {SCHEMA_VERSION}); "
            "upgrade nasdip-zoo or re-export the file"
        )


def _build(name: str, kind: type, data: Any) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"genotype.{name} must be a JSON object, got {data!r}")
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"genotype.{name} has unknown keys {sorted(unknown)}; allowed: {sorted(names)}")
    return kind(**dict(data))


def dumps_json(data: Any) -> str:
    """Indented JSON with innermost lists of numbers on one line (matrix rows stay readable)."""
    text = json.dumps(data, indent=2)
    # indent=2 puts a newline right after "[" of every non-empty list; a JSON string never holds a
    # raw newline, so this cannot touch brackets inside strings
    return re.sub(r"\[\n\s*([-+\d.eE,\s]+?)\n\s*\]", lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Write JSON next to ``path`` and rename it into place, so readers never see half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = dumps_json(data) + "\n"
    return atomic_write(p, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))