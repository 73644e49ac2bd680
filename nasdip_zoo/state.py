"""Training state as flat ``name -> tensor`` dicts: what backtracking snapshots and checkpoints hold.

An optimiser's ``state_dict`` nests per-parameter dicts with Python numbers in them, which a
safetensors file cannot store; :func:`flatten_optimizer` turns it into ``"<param index>.<key>"``
tensors and :func:`load_flat_optimizer` puts them back. The restorer and the search controller
both checkpoint Adam this way, so a resumed run continues bit for bit. :func:`save_checkpoint` and
:func:`read_checkpoint` are the restorers' checkpoint files: one safetensors file (tensors, with the
run's JSON record in its metadata; never a pickle) and a JSON sidecar for people and tools.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ._files import atomic_write

__all__ = ["flatten_optimizer", "load_flat_optimizer", "copy_into", "save_checkpoint", "read_checkpoint",
           "check_resumable", "checkpoint_path", "to_json_floats", "from_json_floats"]


def flatten_optimizer(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimiser's per-parameter state as ``{"<index>.<key>": tensor}`` (numbers become 0-d tensors)."""
    flat: dict[str, torch.Tensor] = {}
    for idx, st in opt.state_dict()["state"].items():
        for key, val in st.items():
            flat[f"{idx}.{key}"] = val if isinstance(val, torch.Tensor) else torch.tensor(val)
    return flat


def load_flat_optimizer(opt: torch.optim.Optimizer, flat: Mapping[str, torch.Tensor]) -> None:
    """Load a :func:`flatten_optimizer` dict back into ``opt`` (its parameter groups are kept)."""
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, val in flat.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = val.clone()
    opt.load_state_dict({"state": state, "param_groups": sd["param_groups"]})


def copy_into(dst: dict[str, torch.Tensor] | None, src: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copy ``src`` into the preallocated ``dst`` when names, shapes and dtypes match (no allocation per
    iteration), else return fresh clones."""
    if dst is not None and dst.keys() == src.keys() and all(
        dst[k].shape == v.shape and dst[k].dtype == v.dtype for k, v in src.items()
    ):
        for k, v in src.items():
            dst[k].copy_(v)
        return dst
    return {k: v.detach().clone() for k, v in src.items()}


def to_json_floats(values: "Sequence[float | None]") -> list[float | None]:
    """Floats for standard JSON: NaN/Inf (a rolled-back iteration, a diverged loss) become null."""
    return [None if v is None or not math.isfinite(v) else v for v in values]


def from_json_floats(values: "Sequence[float | None]") -> list[float]:
    """The inverse of :func:`to_json_floats` for per-iteration records (null becomes NaN)."""
    return [math.nan if v is None else float(v) for v in values]


def checkpoint_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, refused before a run starts (not at its first save, minutes later) when its
    folder is missing or it names a folder."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"checkpoint folder {folder} does not exist; create it or choose another path")
    if p.is_dir():
        raise ValueError(f"checkpoint {p} is a folder; give a file path such as {p / 'run.safetensors'}")
    return p


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def save_checkpoint(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Write ``tensors`` (moved to the CPU) and ``meta`` (standard JSON) atomically, plus ``<path>.json``.

    The metadata inside the one safetensors file is authoritative, so a crash between the two
    replaces can never pair tensors with the wrong run state; the sidecar is for reading.
    """
    from safetensors.torch import save_file

    p = Path(path)
    text = json.dumps(meta, allow_nan=False)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(p, lambda tmp: save_file(cpu, tmp, metadata={"nasdip": text}))
    atomic_write(_sidecar(p), lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1), encoding="utf-8"))


def read_checkpoint(path: str | os.PathLike, fmt: str, what: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and metadata of a :func:`save_checkpoint` file whose ``meta["format"]`` is ``fmt``
    (``what`` names that kind of checkpoint in errors, e.g. "nasdip restore").

    Raises ValueError naming the file when it cannot be read or holds another kind of checkpoint.
    """
    from safetensors import safe_open

    p = Path(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("nasdip", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - any unreadable file is a bad checkpoint
        raise ValueError(f"cannot read checkpoint {p}: {e}") from None
    if meta.get("format") != fmt:
        raise ValueError(f"{p} is not a {what} checkpoint; use another path or delete it")
    return tensors, meta


def check_resumable(path: str | os.PathLike, meta: Mapping[str, Any], settings: Mapping[str, Any],
                    keys: Sequence[str]) -> None:
    """Refuse a checkpoint of another run (any of ``keys`` differs) or one already past ``settings["iterations"]``.

    The iteration count itself may grow: resuming with more iterations extends a finished run.
    """
    saved = meta.get("settings", {})
    diff = [k for k in keys if saved.get(k) != settings.get(k)]
    if diff:
        detail = ", ".join(f"{k}: {saved.get(k)!r} != {settings.get(k)!r}" for k in diff)
        raise ValueError(f"checkpoint {path} belongs to a different run ({detail}); use another path")
    done = int(meta.get("state", {}).get("iteration", 0))
    if done > settings["iterations"]:
        raise ValueError(f"checkpoint {path} has already run {done} iterations, more than the {settings['iterations']} asked")
