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
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backtrack import judge, keeps_failing, no_good_state
from .metrics import psnr_per_image
from .state import (check_resumable, checkpoint_path, from_json_floats, read_checkpoint, save_checkpoint,
                    to_json_floats)

__all__ = ["StackedDIP", "ManyRun", "run_many", "MANY_CHECKPOINT_FORMAT"]

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
    iterations_this_call: int = 0


MANY_CHECKPOINT_FORMAT = "nasdip-restore-many-checkpoint/1"


class _ManyLoop:
    """The restorer's eager loop (host check of every iteration, backtracking before Adam's step) for N
    stacked runs; everything that evolves is checkpointable, so an interrupted batch resumes exactly."""

    _PER_IMAGE = ("best", "best_it", "last_obs", "has_snap", "in_a_row", "rollbacks", "diverged")

    def __init__(self, eng: StackedDIP, ground_truths: torch.Tensor | None, ema_weight: float | None,
                 backtrack_db: float | None, max_rollbacks_in_a_row: int) -> None:
        n = eng.n
        self.eng, self.n, self.gts, self.ema_w = eng, n, ground_truths, ema_weight
        self.backtrack_db, self.max_in_a_row = backtrack_db, max_rollbacks_in_a_row
        self.snap = [t.clone() for t in eng.state()]
        self.current: torch.Tensor | None = None
        self.ema: torch.Tensor | None = None
        self.oracle: torch.Tensor | None = None
        self.snap_cur: torch.Tensor | None = None
        self.snap_ema: torch.Tensor | None = None
        self.losses: list[list[float]] = [[] for _ in range(n)]
        self.psnrs: list[list[float]] = [[] for _ in range(n)]
        self.ema_psnrs: list[list[float]] = [[] for _ in range(n)]
        self.best: list[float | None] = [None] * n
        self.best_it: list[int | None] = [None] * n
        self.last_obs: list[float | None] = [None] * n
        self.has_snap = [False] * n
        self.in_a_row = [0] * n
        self.rollbacks = [0] * n
        self.diverged: list[str | None] = [None] * n
        self.it = 0

    @property
    def all_diverged(self) -> bool:
        return all(d is not None for d in self.diverged)

    def iterate(self, x: torch.Tensor, targets: torch.Tensor, extras: torch.Tensor | None) -> None:
        n, eng, bd = self.n, self.eng, self.backtrack_db
        self.it += 1
        it = self.it
        grads, loss, out = eng.forward_backward(x, targets, extras)
        finite_out = torch.isfinite(out).flatten(1).all(1)
        host = torch.stack([loss.double(), finite_out.double()]).tolist()  # one host read for all N checks
        accept_l, rollback_l = [], []
        for i in range(n):
            lv, fin = host[0][i], host[1][i] > 0
            if self.diverged[i] is not None:
                accept_l.append(False), rollback_l.append(False)
                continue
            self.losses[i].append(lv)
            obs, why = judge(lv, fin, self.last_obs[i], bd)
            if why is not None:
                self.rollbacks[i] += 1
                self.in_a_row[i] += 1
                if not self.has_snap[i]:
                    self.diverged[i] = no_good_state(it, why)
                elif self.in_a_row[i] > self.max_in_a_row:
                    self.diverged[i] = keeps_failing(it, self.in_a_row[i], why)
                accept_l.append(False), rollback_l.append(self.diverged[i] is None)
            else:
                self.in_a_row[i] = 0
                self.last_obs[i] = obs
                self.has_snap[i] = True
                accept_l.append(True), rollback_l.append(False)
        dev = x.device
        accept = torch.tensor(accept_l, device=dev)
        roll = torch.tensor(rollback_l, device=dev)
        with torch.no_grad():
            # backtracking snapshot = the state before this accepted step, as the restorer keeps it
            for s, t in zip(self.snap, eng.state()):
                s.copy_(_select(accept, t, s))
            if self.current is not None:
                self.snap_cur = _select(accept, self.current, self.snap_cur)
                self.snap_ema = _select(accept, self.ema, self.snap_ema) if self.ema is not None else None
            eng.adam(grads, accept)
            out = out.detach()
            self.current = out.clone() if self.current is None else _select(accept, out, self.current)
            if self.ema_w is not None:
                self.ema = (self.current.clone() if self.ema is None
                            else _select(accept, self.ema * self.ema_w + out * (1.0 - self.ema_w), self.ema))
            if any(rollback_l):
                for s, t in zip(self.snap, eng.state()):
                    t.copy_(_select(roll, s, t))
                self.current = _select(roll, self.snap_cur, self.current)
                if self.ema is not None:
                    self.ema = _select(roll, self.snap_ema, self.ema)
            if self.snap_cur is None:
                self.snap_cur = self.current.clone()
                self.snap_ema = self.ema.clone() if self.ema is not None else None
        if self.gts is not None:
            self._score(accept_l)

    def _score(self, accept_l: list[bool]) -> None:
        """PSNRs against the ground truths and the ORACLE best (evaluation only, never the output)."""
        assert self.current is not None and self.gts is not None
        p = psnr_per_image(self.current, self.gts).tolist()
        ep = psnr_per_image(self.ema, self.gts).tolist() if self.ema is not None else [math.nan] * self.n
        for i in range(self.n):
            if self.diverged[i] is not None and len(self.psnrs[i]) >= len(self.losses[i]):
                continue
            pi, epi = (p[i], ep[i]) if accept_l[i] else (math.nan, math.nan)
            self.psnrs[i].append(pi)
            if self.ema_w is not None:
                self.ema_psnrs[i].append(epi)
            if accept_l[i]:
                score = epi if self.ema is not None else pi
                best = self.best[i]
                if best is None or score > best:
                    self.best[i], self.best_it[i] = score, self.it
                    src = self.ema if self.ema is not None else self.current
                    self.oracle = src.clone() if self.oracle is None else self.oracle
                    self.oracle[i] = src[i]

    # ------------------------------------------------------------------ checkpoints
    def tensors(self) -> dict[str, torch.Tensor]:
        eng = self.eng
        t: dict[str, torch.Tensor] = {"step_count": eng.step_count}
        for prefix, d in (("param", eng.params), ("exp_avg", eng.exp_avg), ("exp_avg_sq", eng.exp_avg_sq)):
            t.update({f"{prefix}.{k}": v for k, v in d.items()})
        t.update({f"snap.{j}": v for j, v in enumerate(self.snap)})
        for name in ("current", "ema", "oracle", "snap_cur", "snap_ema"):
            v = getattr(self, name)
            if v is not None:
                t[name] = v
        return t

    def state(self) -> dict[str, Any]:
        d: dict[str, Any] = {"iteration": self.it}
        for k in ("losses", "psnrs", "ema_psnrs"):
            d[k] = [to_json_floats(seq) for seq in getattr(self, k)]
        for k in self._PER_IMAGE:
            d[k] = list(getattr(self, k))
        d["best"] = to_json_floats(self.best)
        return d

    def load(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        eng = self.eng
        with torch.no_grad():
            eng.step_count.copy_(tensors["step_count"])
            for prefix, d in (("param", eng.params), ("exp_avg", eng.exp_avg), ("exp_avg_sq", eng.exp_avg_sq)):
                for k, v in d.items():
                    v.copy_(tensors[f"{prefix}.{k}"])
            for j, v in enumerate(self.snap):
                v.copy_(tensors[f"snap.{j}"])
        dev = eng.step_count.device
        for name in ("current", "ema", "oracle", "snap_cur", "snap_ema"):
            setattr(self, name, tensors[name].to(dev) if name in tensors else None)
        self.it = int(state["iteration"])
        for k in ("losses", "psnrs", "ema_psnrs"):
            setattr(self, k, [from_json_floats(seq) for seq in state[k]])
        for k in self._PER_IMAGE:
            setattr(self, k, list(state[k]))


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
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    settings: Mapping[str, Any] | None = None,
    must_match: Sequence[str] = (),
) -> ManyRun:
    """DIP's loop (the restorer's, iteration by iteration) for N images at once.

    z: N x 1 x Cin x H x W input noise; targets: N x 1 x C x h x w; ground_truths: N x 1 x C x H x W
    (float64) or None. One host read per iteration serves all N images' NaN and backtracking checks.
    With ``checkpoint``, the whole batch is saved every ``checkpoint_every`` iterations and at the
    end, and resumed from the file when it exists (``settings`` is recorded; ``must_match`` of its
    keys must equal the file's).
    """
    eng = StackedDIP(nets, lr, measure)
    loop = _ManyLoop(eng, ground_truths, ema_weight, backtrack_db, max_rollbacks_in_a_row)
    settings = dict(settings or {}, iterations=iterations)
    ckpt = checkpoint_path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        tensors, meta = read_checkpoint(ckpt, MANY_CHECKPOINT_FORMAT, "nasdip restore_many")
        check_resumable(ckpt, meta, settings, must_match)
        loop.load(tensors, meta["state"])
        z = tensors["z"].to(z.device)
        for j, g in enumerate(generators):
            g.set_state(tensors[f"rng.{j}"])
        if progress is not None:
            progress.update(loop.it)

    def save() -> None:
        assert ckpt is not None
        t = loop.tensors()
        t["z"] = z
        t.update({f"rng.{j}": g.get_state() for j, g in enumerate(generators)})
        save_checkpoint(ckpt, t, {"format": MANY_CHECKPOINT_FORMAT, "settings": settings, "state": loop.state()})

    t0 = time.perf_counter()
    start = loop.it
    while loop.it < iterations and not loop.all_diverged:
        if reg_noise_std > 0:
            noise = torch.stack([torch.randn(z.shape[1:], generator=g, device=z.device) for g in generators])
            x = z + noise * reg_noise_std
        else:
            x = z
        loop.iterate(x, targets, extras)
        if progress is not None:
            progress.update(1)
        if ckpt is not None and loop.it % checkpoint_every == 0 and loop.it < iterations:
            save()
    seconds = time.perf_counter() - t0
    if ckpt is not None and (loop.it > start or not ckpt.exists()):
        save()
    if loop.current is None:
        raise ValueError("restore_many ran no iteration (iterations must be at least 1)")
    return ManyRun(
        current=loop.current, ema=loop.ema, oracle=loop.oracle, losses=loop.losses, psnrs=loop.psnrs,
        ema_psnrs=loop.ema_psnrs, oracle_psnr=loop.best, oracle_iteration=loop.best_it, rollbacks=loop.rollbacks,
        iterations=loop.it, seconds=seconds, diverged=loop.diverged, iterations_this_call=loop.it - start,
    )
