"""Many DIP runs as one program: N independent networks (own weights, Adam state, input noise, seed).

The N networks' parameters are stacked (``torch.func.stack_module_state``) and one ``vmap`` of
``grad_and_value`` computes every image's loss and gradients at once; Adam is written for the
stacked tensors with a step count per image, so one image's rollback restores only its slice of
weights, moments and step, exactly as its own run would. BatchNorm runs in train mode (batch
statistics of each image), so a functional template without running statistics computes the same
outputs. :meth:`nasdip_zoo.restore.DIPRestorer.restore_many` is the public entry point.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .metrics import psnr_from_mse, psnr_per_image

__all__ = ["StackedDIP", "ManyRun", "run_many"]

_BETAS = (0.9, 0.999)
_EPS = 1e-8


def _functional_template(net: nn.Module) -> nn.Module:
    """A weightless copy of ``net`` whose BatchNorms use batch statistics only (train-mode outputs unchanged)."""
    tmpl = copy.deepcopy(net).to("meta")
    for m in tmpl.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None
    return tmpl


class StackedDIP:
    """N copies of one architecture, trained independently by one vmapped step and a stacked Adam.

    ``loss_fn(out, target, extra)`` maps one image's output to its loss (``extra`` is the image's
    slice of ``extras``, e.g. an inpainting mask, or None).
    """

    def __init__(self, nets: Sequence[nn.Module], lr: float,
                 measure: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]) -> None:
        from torch.func import grad_and_value, stack_module_state, vmap

        if not nets:
            raise ValueError("restore_many needs at least one image")
        for n in nets:
            n.train()
        self.n = len(nets)
        params, _ = stack_module_state(list(nets))
        self.names = list(params)
        self.params = {k: v.detach().clone() for k, v in params.items()}
        self.template = _functional_template(nets[0])
        self.lr = float(lr)
        dev = next(iter(self.params.values())).device
        self.step_count = torch.zeros(self.n, dtype=torch.float64, device=dev)
        self.exp_avg = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(v) for k, v in self.params.items()}
        template = self.template

        def loss_and_out(p: dict[str, torch.Tensor], x: torch.Tensor, target: torch.Tensor, extra: Any):
            out = torch.func.functional_call(template, p, (x,))
            return F.mse_loss(measure(out, extra), target), out

        self._grad = vmap(grad_and_value(loss_and_out, has_aux=True), in_dims=(0, 0, 0, 0))
        self._grad_shared = vmap(grad_and_value(loss_and_out, has_aux=True), in_dims=(0, 0, 0, None))

    def forward_backward(self, x: torch.Tensor, targets: torch.Tensor, extras: torch.Tensor | None):
        """x: N x 1 x C x H x W. Returns (grads, losses [N], outputs N x 1 x C' x H x W)."""
        fn = self._grad if extras is not None else self._grad_shared
        grads, (loss, out) = fn(self.params, x, targets, extras)
        return grads, loss, out

    def state(self) -> list[torch.Tensor]:
        """The stacked tensors an iteration changes (dim 0 = image)."""
        return [*self.params.values(), *self.exp_avg.values(), *self.exp_avg_sq.values(), self.step_count]

    @torch.no_grad()
    def adam(self, grads: dict[str, torch.Tensor], accept: torch.Tensor) -> None:
        """Adam (torch's defaults) on the images where ``accept`` is True; the others keep their state."""
        b1, b2 = _BETAS
        self.step_count += accept.to(self.step_count.dtype)
        step = self.step_count.clamp(min=1)
        bc1 = 1 - b1**step
        bc2_sqrt = torch.sqrt(1 - b2**step)
        for k, p in self.params.items():
            g = grads[k]
            shape = (self.n,) + (1,) * (p.dim() - 1)
            acc = accept.view(shape)
            m = torch.where(acc, self.exp_avg[k].lerp(g, 1 - b1), self.exp_avg[k])
            v = torch.where(acc, self.exp_avg_sq[k] * b2 + (1 - b2) * g * g, self.exp_avg_sq[k])
            denom = v.sqrt() / bc2_sqrt.to(p.dtype).view(shape) + _EPS
            new_p = p - (self.lr / bc1).to(p.dtype).view(shape) * m / denom
            p.copy_(torch.where(acc, new_p, p))
            self.exp_avg[k].copy_(m)
            self.exp_avg_sq[k].copy_(v)


def _select(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image (dim 0): ``a`` where mask else ``b``."""
    return torch.where(mask.view((-1,) + (1,) * (a.dim() - 1)), a, b)


@dataclass
class ManyRun:
    """Per-image results of :func:`run_many` (tensors stacked on dim 0, lists per image)."""

    current: torch.Tensor
    ema: torch.Tensor | None
    oracle: torch.Tensor | None
    losses: list[list[float]]
    psnrs: list[list[float]]
    ema_psnrs: list[list[float]]
    oracle_psnr: list[float | None]
    oracle_iteration: list[int | None]
    rollbacks: list[int]
    iterations: int
    seconds: float
    diverged: list[str | None] = field(default_factory=list)


def run_many(
    nets: Sequence[nn.Module],
    z: torch.Tensor,
    generators: Sequence[torch.Generator],
    targets: torch.Tensor,
    measure: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    *,
    extras: torch.Tensor | None,
    ground_truths: torch.Tensor | None,
    iterations: int,
    lr: float,
    reg_noise_std: float,
    ema_weight: float | None,
    backtrack_db: float | None,
    max_rollbacks_in_a_row: int,
    progress: Any = None,
) -> ManyRun:
    """DIP's loop (the restorer's, iteration by iteration) for N images at once.

    z: N x 1 x Cin x H x W input noise; targets: N x 1 x C x h x w; ground_truths: N x 1 x C x H x W
    (float64) or None. One host read per iteration serves all N images' NaN and backtracking checks.
    """
    n = len(nets)
    eng = StackedDIP(nets, lr, measure)
    snap = [t.clone() for t in eng.state()]
    current = ema = oracle = None
    losses: list[list[float]] = [[] for _ in range(n)]
    psnrs: list[list[float]] = [[] for _ in range(n)]
    ema_psnrs: list[list[float]] = [[] for _ in range(n)]
    best: list[float | None] = [None] * n
    best_it: list[int | None] = [None] * n
    last_obs: list[float | None] = [None] * n
    has_snap = [False] * n
    in_a_row = [0] * n
    rollbacks = [0] * n
    diverged: list[str | None] = [None] * n
    snap_cur = snap_ema = None
    alive = torch.ones(n, dtype=torch.bool, device=z.device)
    t0 = time.perf_counter()
    it = 0
    for it in range(1, iterations + 1):
        if reg_noise_std > 0:
            noise = torch.stack([torch.randn(z.shape[1:], generator=g, device=z.device) for g in generators])
            x = z + noise * reg_noise_std
        else:
            x = z
        grads, loss, out = eng.forward_backward(x, targets, extras)
        finite_out = torch.isfinite(out).flatten(1).all(1)
        host = torch.stack([loss.double(), finite_out.double()]).tolist()
        accept_l, rollback_l = [], []
        for i in range(n):
            lv, fin = host[0][i], host[1][i] > 0
            if diverged[i] is not None:
                accept_l.append(False), rollback_l.append(False)
                continue
            losses[i].append(lv)
            finite = math.isfinite(lv) and fin
            obs = psnr_from_mse(lv) if finite else math.nan
            collapsed = backtrack_db is not None and last_obs[i] is not None and obs - last_obs[i] < -backtrack_db
            if not finite or collapsed:
                rollbacks[i] += 1
                in_a_row[i] += 1
                why = "NaN/Inf in the output or loss" if not finite else f"a drop of more than {backtrack_db} dB"
                if not has_snap[i]:
                    diverged[i] = f"iteration {it}: {why} before any good state to roll back to; try a lower lr"
                elif in_a_row[i] > max_rollbacks_in_a_row:
                    diverged[i] = f"iteration {it}: {in_a_row[i]} rollbacks in a row ({why}); the run does not recover, try a lower lr"
                accept_l.append(False), rollback_l.append(diverged[i] is None)
            else:
                in_a_row[i] = 0
                last_obs[i] = obs
                has_snap[i] = True
                accept_l.append(True), rollback_l.append(False)
        accept = torch.tensor(accept_l, device=z.device)
        roll = torch.tensor(rollback_l, device=z.device)
        with torch.no_grad():
            # backtracking snapshot = the state before this accepted step, as the restorer keeps it
            for s, t in zip(snap, eng.state()):
                s.copy_(_select(accept, t, s))
            if current is not None:
                snap_cur = _select(accept, current, snap_cur)
                snap_ema = _select(accept, ema, snap_ema) if ema is not None else None
            eng.adam(grads, accept)
            out = out.detach()
            current = out.clone() if current is None else _select(accept, out, current)
            if ema_weight is not None:
                ema = current.clone() if ema is None else _select(accept, ema * ema_weight + out * (1.0 - ema_weight), ema)
            if any(rollback_l):
                for s, t in zip(snap, eng.state()):
                    t.copy_(_select(roll, s, t))
                current = _select(roll, snap_cur, current)
                if ema is not None:
                    ema = _select(roll, snap_ema, ema)
            if snap_cur is None:
                snap_cur, snap_ema = current.clone(), ema.clone() if ema is not None else None
        if ground_truths is not None:
            p = psnr_per_image(current, ground_truths).tolist()
            ep = psnr_per_image(ema, ground_truths).tolist() if ema is not None else [math.nan] * n
            for i in range(n):
                if diverged[i] is not None and len(psnrs[i]) >= len(losses[i]):
                    continue
                pi, epi = (p[i], ep[i]) if accept_l[i] else (math.nan, math.nan)
                psnrs[i].append(pi)
                if ema_weight is not None:
                    ema_psnrs[i].append(epi)
                if accept_l[i]:
                    score = epi if ema is not None else pi
                    if best[i] is None or score > best[i]:
                        best[i], best_it[i] = score, it
                        src = ema if ema is not None else current
                        oracle = src.clone() if oracle is None else oracle
                        oracle[i] = src[i]
        alive &= torch.tensor([d is None for d in diverged], device=z.device)
        if progress is not None:
            progress.update(1)
        if not bool(alive.any()):
            break
    return ManyRun(
        current=current, ema=ema, oracle=oracle, losses=losses, psnrs=psnrs, ema_psnrs=ema_psnrs,
        oracle_psnr=best, oracle_iteration=best_it, rollbacks=rollbacks, iterations=it,
        seconds=time.perf_counter() - t0, diverged=diverged,
    )
