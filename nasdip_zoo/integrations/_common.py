"""Small helpers shared by the integrations: genotype width, device choice, the optimisation step."""

from __future__ import annotations

import os
from typing import Any, Callable

import torch

from ..genotype import Genotype
from ..restore import resolve_device  # noqa: F401 - one device rule for the whole package
from ..zoo import get_genotype


def resolve_genotype(genotype: Genotype | str | os.PathLike[str], channels: int | None = None) -> Genotype:
    """A Genotype from a Genotype, zoo name or JSON path, optionally at width ``channels``.

    The same-level skip keeps its width for concat merges (DIP's U-Net uses 4) unless it would exceed
    ``channels``; sum merges need skip width == channels, so it follows.
    """
    g = genotype if isinstance(genotype, Genotype) else get_genotype(genotype)
    if channels is None:
        return g
    return g.with_width(channels)


def progress_bar(total: int, enabled: bool, desc: str) -> Any:
    """A tqdm bar (disabled when ``enabled`` is False)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, leave=False)


def optimisation_step(
    it: int,
    loss: torch.Tensor,
    opt: torch.optim.Optimizer,
    losses: list[float],
    bar: Any,
    callback: Callable[[int, float], None] | None,
) -> None:
    """One Adam step on ``loss``; records it, calls ``callback(it, loss)`` and advances the bar."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    losses.append(loss.item())
    if callback is not None:
        callback(it, losses[-1])
    bar.update(1)
    if it % 50 == 0:
        bar.set_postfix(loss=f"{losses[-1]:.5f}")
