"""Training state as flat ``name -> tensor`` dicts: what backtracking snapshots and checkpoints hold.

An optimiser's ``state_dict`` nests per-parameter dicts with Python numbers in them, which a
safetensors file cannot store; :func:`flatten_optimizer` turns it into ``"<param index>.<key>"``
tensors and :func:`load_flat_optimizer` puts them back. The restorer and the search controller
both checkpoint Adam this way, so a resumed run continues bit for bit.
"""

from __future__ import annotations

from typing import Mapping

import torch

__all__ = ["flatten_optimizer", "load_flat_optimizer", "copy_into"]


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
