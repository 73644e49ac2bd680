"""Learning-free restoration with a deep image prior: DIP's optimisation loop around any genotype.

The algorithm is DIP's (Ulyanov et al.) as NAS-DIP runs it (NASDIP_FACTS.md section 5): a fixed
input ``z = U[0,1) * 0.1`` with 32 channels at the output resolution, perturbed every iteration by
``N(0,1) * reg_noise_std``; Adam on ``mse(A(net(input)), y)``; BatchNorm in train mode throughout;
an exponential moving average (EMA) of the output where the card says so; and DIP's backtracking.
Every random number comes from one ``torch.Generator`` that is checkpointed with the run.
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn

from .backtrack import judge, keeps_failing, no_good_state
from .fastpath import DIPStep, FastPath, resolve_fast
from .imageio import ImageLike, from_tensor, merge_alpha, split_alpha, to_tensor
from .metrics import psnr_per_image
from .operators import Denoising, Inpainting, Operator, SuperResolution, as_operator
from .state import (check_resumable, checkpoint_path, copy_into, flatten_optimizer, from_json_floats,
                    load_flat_optimizer, read_checkpoint, save_checkpoint, to_json_floats)

__all__ = ["DIPRestorer", "RestoreResult", "RestorationDiverged", "resolve_device", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "nasdip-restore-checkpoint/1"
_BASELINE_CARD = "dip-skip"  # settings used for a bare Genotype or nn.Module


class RestorationDiverged(RuntimeError):
    """The optimisation produced NaN/Inf or kept collapsing, and rolling back did not recover it."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


@dataclass
class RestoreResult:
    """What :meth:`DIPRestorer.restore` returns; images are in the observation's form (PIL, numpy or torch)."""

    image: ImageLike
    """The network output of the last iteration (the last accepted one) with the observation's alpha."""
    ema_image: ImageLike | None
    """The exponential moving average of the outputs (None when the run uses no EMA)."""
    losses: list[float]
    """Training loss per iteration (a rolled-back iteration keeps the loss that triggered it)."""
    psnrs: list[float] | None
    """PSNR of the raw output against the ground truth per iteration (None without ground truth)."""
    ema_psnrs: list[float] | None
    """PSNR of the EMA image against the ground truth per iteration (None without ground truth or EMA)."""
    oracle_psnr: float | None
    """ORACLE (uses the ground truth, impossible at test time): the best PSNR over iterations of the
    default output (EMA if used, else raw). Reported for comparison with papers' "Ours*"; never the output."""
    oracle_iteration: int | None
    """ORACLE: the 1-based iteration at which ``oracle_psnr`` was reached."""
    oracle_image: ImageLike | None
    """ORACLE: the output at ``oracle_iteration`` (only kept when a ground truth was given)."""
    iterations: int
    """Iterations run in total (including those done before a resume)."""
    seconds: float
    """Wall-clock seconds of the optimisation in this call."""
    iterations_per_second: float
    """Iterations of this call divided by ``seconds``."""
    rollbacks: int
    """How many times backtracking (or a NaN/Inf guard) rolled the weights back."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The resolved settings (genotype, lr, iterations, reg_noise_std, ema, seed, device, ...)."""

    @property
    def output(self) -> ImageLike:
        """The recommended output: the EMA image when the run used an EMA, else ``image``."""
        return self.ema_image if self.ema_image is not None else self.image

    @property
    def psnr(self) -> float | None:
        """PSNR of :attr:`output` against the ground truth (None without ground truth); not an oracle."""
        seq = self.ema_psnrs if self.ema_image is not None else self.psnrs
        return seq[-1] if seq else None


@dataclass
class _RunState:
    """Everything that evolves during a run; saved in checkpoints so a resumed run is identical."""

    iteration: int = 0
    losses: list[float] = field(default_factory=list)
    psnrs: list[float] = field(default_factory=list)
    ema_psnrs: list[float] = field(default_factory=list)
    rollbacks: int = 0
    in_a_row: int = 0
    last_obs_psnr: float | None = None
    oracle_psnr: float | None = None
    oracle_iteration: int | None = None

    _LISTS = ("losses", "psnrs", "ema_psnrs")

    def to_json(self) -> dict[str, Any]:
        """Plain, standard JSON (NaN of rolled-back iterations becomes null)."""
        d = dict(self.__dict__)
        for k in self._LISTS:
            d[k] = to_json_floats(d[k])
        d["last_obs_psnr"], d["oracle_psnr"] = to_json_floats([d["last_obs_psnr"], d["oracle_psnr"]])
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "_RunState":
        d = dict(d)
        for k in cls._LISTS:
            d[k] = from_json_floats(d.get(k, []))
        return cls(**d)


# ----------------------------------------------------------------------------------------------


class DIPRestorer:
    """Restore an image with a deep image prior, using a zoo genotype, a Genotype or any ``nn.Module``.

    Defaults (iterations = t*, lr, reg_noise_std, EMA weight, input noise) come from the genotype's
    card for the task being solved; every one can be overridden. ``ema=False`` (or 0) disables the
    EMA of a card that has one. A bare Genotype or module uses DIP's ("dip-skip") settings.
    """

    def __init__(
        self,
        genotype: Any = "nasdip-denoise",
        *,
        iterations: int | None = None,
        lr: float | None = None,
        reg_noise_std: float | None = None,
        ema: float | bool | None = None,
        input_channels: int | None = None,
        input_scale: float | None = None,
        seed: int = 0,
        device: str | torch.device = "auto",
        progress: bool = True,
        backtrack_db: float | None = 5.0,
        max_rollbacks_in_a_row: int = 20,
        name: str | None = None,
        fast: "str | FastPath | None" = "auto",
    ) -> None:
        from .genotype import Genotype  # lazy: keep `import nasdip_zoo` light
        from .zoo import get_card

        self.card = None
        self.module: nn.Module | None = None
        self.genotype = None
        if isinstance(genotype, nn.Module):
            self.module = copy.deepcopy(genotype)  # restore() never changes the caller's weights
            self.name = type(genotype).__name__
        elif isinstance(genotype, Genotype):
            self.genotype = genotype
            self.name = "custom-genotype"
        else:
            self.card = get_card(genotype)  # ValueError for an unknown name
            self.genotype = self.card.genotype
            self.name = self.card.name
        if name is not None:
            self.name = str(name)  # a label for the progress bar and the settings record
        self._settings_source = self.card if self.card is not None else get_card(_BASELINE_CARD)
        for label, v in (("iterations", iterations), ("input_channels", input_channels)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"{label} must be a positive integer, got {v!r}")
        if lr is not None and not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        if reg_noise_std is not None and not reg_noise_std >= 0:
            raise ValueError(f"reg_noise_std must be >= 0, got {reg_noise_std!r}")
        if ema is not None and ema is not False and not (0 <= float(ema) < 1):
            raise ValueError(f"ema must be a weight in [0, 1), False or None, got {ema!r}")
        self.overrides = {
            "iterations": iterations,
            "lr": lr,
            "reg_noise_std": reg_noise_std,
            "ema": ema,
            "input_channels": input_channels,
            "input_scale": input_scale,
        }
        self.seed = int(seed)
        self.device = resolve_device(device)
        self.progress = progress
        self.backtrack_db = backtrack_db
        self.max_rollbacks_in_a_row = int(max_rollbacks_in_a_row)
        resolve_fast(fast, self.device)  # a bad value fails here, not mid-run
        self.fast = fast

    def fast_path(self, iterations: int | None = None, net: nn.Module | None = None) -> FastPath:
        """The :class:`~nasdip_zoo.fastpath.FastPath` a run of ``iterations`` on ``net`` uses (``fast="auto"`` decides per run)."""
        if isinstance(self.fast, str) and self.fast == "auto":
            return FastPath.auto(self.device, iterations=iterations, net=net)
        return resolve_fast(self.fast, self.device)

    # ------------------------------------------------------------------ settings
    def settings_for(self, task: str | None) -> dict[str, Any]:
        """The resolved optimisation settings for ``task`` ('denoise', 'sr', 'inpaint' or None)."""
        src = self._settings_source
        dip = src.settings.get(task) if task else None
        dip = dip or src.dip
        o = self.overrides
        ema = dip.ema if o["ema"] is None else (None if o["ema"] is False or float(o["ema"]) == 0 else float(o["ema"]))
        return {
            "genotype": self.name,
            "task": task,
            "iterations": int(o["iterations"] if o["iterations"] is not None else dip.t_star),
            "lr": float(o["lr"] if o["lr"] is not None else dip.lr),
            "reg_noise_std": float(o["reg_noise_std"] if o["reg_noise_std"] is not None else dip.reg_noise_std),
            "ema": ema,
            "input_channels": int(o["input_channels"] or dip.input_channels),
            "input_scale": float(o["input_scale"] if o["input_scale"] is not None else dip.input_scale),
            "seed": self.seed,
            "device": self.device.type,
            "backtrack_db": self.backtrack_db,
        }

    def _build(self, in_channels: int, out_channels: int, seed: int | None = None) -> nn.Module:
        if self.module is not None:
            return copy.deepcopy(self.module)
        from .network import build_nasdip

        with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the global RNG
            torch.random.default_generator.manual_seed(self.seed if seed is None else int(seed))
            return build_nasdip(self.genotype, in_channels=in_channels, out_channels=out_channels)

    # ------------------------------------------------------------------ the loop
    def restore(
        self,
        observation: ImageLike,
        operator: Any = None,
        *,
        scale: int | None = None,
        mask: ImageLike | None = None,
        ground_truth: ImageLike | None = None,
        callback: Callable[[int, dict[str, Any]], Any] | None = None,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 100,
        out_channels: int | None = None,
    ) -> RestoreResult:
        """Restore ``observation`` under ``operator`` (None/"denoise", "sr" with ``scale``, "inpaint" with ``mask``, or any callable).

        ``callback(iteration, info)`` is called after every iteration (info: loss, psnr, ema_psnr,
        output tensor, rolled_back); returning True stops early. With ``checkpoint=path`` the run
        is saved every ``checkpoint_every`` iterations and at the end, and resumed from ``path``
        when it exists.
        """
        y_full, form = to_tensor(observation)
        if y_full.shape[0] != 1:
            raise ValueError(f"restore() takes one image, got a batch of {y_full.shape[0]}")
        y, alpha = split_alpha(y_full)
        op = as_operator(operator, scale=scale, mask=mask)
        task = _task_of(op)
        s = self.settings_for(task)
        s["operator"] = type(op).__name__ if task is None else task
        s["scale"] = getattr(op, "factor", None)
        out_c = int(out_channels or y.shape[1])
        h, w = op.output_size(tuple(y.shape[-2:]))
        s["output_size"] = [h, w]
        s["observation_shape"] = list(y.shape)
        dev = self.device
        y = y.to(dev)
        op = op.to(dev)
        gt = None
        if ground_truth is not None:
            gt, _ = to_tensor(ground_truth, dtype=torch.float64)
            gt = split_alpha(gt)[0].to(dev)
            if gt.shape[-2:] != (h, w) or gt.shape[1] != out_c:
                raise ValueError(
                    f"ground truth is {gt.shape[1]}x{gt.shape[2]}x{gt.shape[3]} but the restored image will be {out_c}x{h}x{w}"
                )
        target = op.prepare(y)
        ema_w = s["ema"]
        every = int(checkpoint_every)
        if checkpoint is not None and every < 1:
            raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")

        gen = torch.Generator(device=dev).manual_seed(self.seed)
        z = torch.rand((1, s["input_channels"], h, w), generator=gen, device=dev) * s["input_scale"]
        net = self._build(s["input_channels"], out_c).to(dev)
        net.train()  # DIP keeps BatchNorm in train mode throughout
        fp = self.fast_path(s["iterations"], net)
        s["fast"] = fp.label
        step = DIPStep(net, op, target, s["lr"], fp, expected_output=(1, out_c, h, w))
        opt = step.optimizer
        st = _RunState()
        ema: torch.Tensor | None = None
        current: torch.Tensor | None = None
        oracle: torch.Tensor | None = None
        snap: dict[str, torch.Tensor] | None = None

        ckpt = checkpoint_path(checkpoint) if checkpoint is not None else None
        if ckpt is not None and ckpt.exists():
            loaded = _load_checkpoint(ckpt, s)
            net.load_state_dict({k[4:]: v for k, v in loaded.items() if k.startswith("net.")})
            load_flat_optimizer(opt, {k[4:]: v for k, v in loaded.items() if k.startswith("opt.")})
            z = loaded["z"].to(dev)
            gen.set_state(loaded["rng"])
            ema = loaded["ema"].to(dev) if "ema" in loaded else None
            current = loaded["current"].to(dev) if "current" in loaded else None
            oracle = loaded["oracle"].to(dev) if "oracle" in loaded else None
            snap_items = {k[5:]: v.to(dev) for k, v in loaded.items() if k.startswith("snap.")}
            snap = snap_items or None
            st = _RunState.from_json(loaded["__state__"])
            if gt is not None:  # the first part may have run without a ground truth
                st.psnrs += [math.nan] * (st.iteration - len(st.psnrs))
                if ema_w is not None:
                    st.ema_psnrs += [math.nan] * (st.iteration - len(st.ema_psnrs))

        checks = (self.backtrack_db, self.max_rollbacks_in_a_row)
        loop: _Eager | _Deferred
        if fp.sync_every > 1 and callback is None:  # loss/PSNR stay on the device, checked every k iterations
            loop = _Deferred(step, st, gt, ema_w, ema, current, oracle, *checks)
            k = fp.sync_every
        else:
            loop = _Eager(step, st, gt, ema_w, ema, current, oracle, snap, *checks)
            k = 1

        def save(path: Path) -> None:
            tensors = {"z": z, "rng": gen.get_state()}
            tensors.update(loop.checkpoint_tensors())
            _save_checkpoint(path, tensors, s, st)

        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=s["iterations"], initial=st.iteration, desc=f"{self.name} {s['operator']}", leave=True)
        reg = s["reg_noise_std"]
        total = s["iterations"]
        start_iter = st.iteration
        t0 = time.perf_counter()
        try:
            while st.iteration < total:
                net_input = z + torch.randn(z.shape, generator=gen, device=dev) * reg if reg > 0 else z
                st.iteration += 1
                info = loop.iterate(net_input)
                due = ckpt is not None and st.iteration % every == 0 and st.iteration < total
                if st.iteration % k == 0 or st.iteration == total or due:
                    n_done = loop.flush()
                    if bar is not None:
                        bar.set_postfix(_postfix(st, gt is not None, ema_w), refresh=False)
                        bar.update(n_done)
                if due:
                    save(ckpt)
                if callback is not None and callback(st.iteration, info) is True:
                    break
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - t0
        if ckpt is not None:
            save(ckpt)
        ema, current, oracle = loop.ema, loop.current, loop.oracle
        if current is None:
            raise RestorationDiverged("no iteration produced a finite output")

        def back(t: torch.Tensor | None) -> ImageLike | None:
            return None if t is None else from_tensor(merge_alpha(t.float(), alpha), form)

        done = st.iteration - start_iter
        return RestoreResult(
            image=back(current),
            ema_image=back(ema),
            losses=list(st.losses),
            psnrs=list(st.psnrs) if gt is not None else None,
            ema_psnrs=list(st.ema_psnrs) if gt is not None and ema_w is not None else None,
            oracle_psnr=st.oracle_psnr,
            oracle_iteration=st.oracle_iteration,
            oracle_image=back(oracle),
            iterations=st.iteration,
            seconds=seconds,
            iterations_per_second=done / seconds if seconds > 0 else 0.0,
            rollbacks=st.rollbacks,
            settings=s,
        )

    def restore_many(
        self,
        images: "Sequence[ImageLike]",
        operator: Any = None,
        *,
        scale: int | None = None,
        masks: "Sequence[ImageLike] | None" = None,
        ground_truths: "Sequence[ImageLike] | None" = None,
        seeds: "Sequence[int] | None" = None,
        out_channels: int | None = None,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 100,
    ) -> list[RestoreResult]:
        """Restore N images of the same size as N independent runs (own network, Adam state, input noise
        and seed; default seeds ``seed, seed+1, ...``) fused into one vmapped program per iteration.

        Result ``i`` matches ``DIPRestorer(..., seed=seeds[i]).restore(images[i], ...)`` within float
        tolerance (always the eager, per-iteration-checked loop; no callback). ``masks`` gives each
        image its own inpainting mask. With ``checkpoint=path`` the whole batch is saved every
        ``checkpoint_every`` iterations and at the end, and resumed from ``path`` when it exists.
        """
        from .many import run_many

        n = len(images)
        if n == 0:
            raise ValueError("restore_many needs at least one image")
        seeds = [self.seed + i for i in range(n)] if seeds is None else [int(v) for v in seeds]
        for label, seq in (("seeds", seeds), ("masks", masks), ("ground_truths", ground_truths)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{label} has {len(seq)} entries for {n} images; give one per image")
        dev = self.device
        ys, alphas, forms, ops = [], [], [], []
        for i, img in enumerate(images):
            t, form = to_tensor(img)
            if t.shape[0] != 1:
                raise ValueError(f"image {i} is a batch of {t.shape[0]}; pass one image per entry")
            y, alpha = split_alpha(t)
            if ys and y.shape != ys[0].shape:
                raise ValueError(f"image {i} is {tuple(y.shape[1:])} but image 0 is {tuple(ys[0].shape[1:])}: "
                                 "restore_many needs images of one size (group them by size)")
            ys.append(y), alphas.append(alpha), forms.append(form)
            ops.append(as_operator(operator, scale=scale, mask=masks[i] if masks is not None else None).to(dev))
        op0 = ops[0]
        task = _task_of(op0)
        s = self.settings_for(task)
        out_c = int(out_channels or ys[0].shape[1])
        h, w = op0.output_size(tuple(ys[0].shape[-2:]))
        s.update(operator=type(op0).__name__ if task is None else task, scale=getattr(op0, "factor", None),
                 output_size=[h, w], observation_shape=list(ys[0].shape), seeds=seeds, batch=n,
                 fast="restore_many (vmap)")
        if checkpoint is not None and (not isinstance(checkpoint_every, int) or checkpoint_every < 1):
            raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
        targets = torch.stack([op.prepare(y.to(dev)) for op, y in zip(ops, ys)])
        if isinstance(op0, Inpainting):
            extras = torch.stack([op.mask.to(dev).expand(1, out_c, h, w) for op in ops])
            measure = lambda out, m: out * m  # noqa: E731
        else:
            extras = None
            measure = lambda out, _m: op0(out)  # noqa: E731
        gts = None
        if ground_truths is not None:
            gl = []
            for g in ground_truths:
                gt = split_alpha(to_tensor(g, dtype=torch.float64)[0])[0].to(dev)
                if gt.shape[-2:] != (h, w) or gt.shape[1] != out_c:
                    raise ValueError(f"a ground truth is {tuple(gt.shape[1:])} but the restored images will be {out_c}x{h}x{w}")
                gl.append(gt)
            gts = torch.stack(gl)
        gens, zs, nets = [], [], []
        for sd in seeds:
            gen = torch.Generator(device=dev).manual_seed(sd)
            zs.append(torch.rand((1, s["input_channels"], h, w), generator=gen, device=dev) * s["input_scale"])
            gens.append(gen)
            nets.append(self._build(s["input_channels"], out_c, seed=sd).to(dev))
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=s["iterations"], desc=f"{self.name} {s['operator']} x{n}", leave=True)
        try:
            run = run_many(nets, torch.stack(zs), gens, targets, measure, extras=extras, ground_truths=gts,
                           iterations=s["iterations"], lr=s["lr"], reg_noise_std=s["reg_noise_std"], ema_weight=s["ema"],
                           backtrack_db=self.backtrack_db, max_rollbacks_in_a_row=self.max_rollbacks_in_a_row, progress=bar,
                           checkpoint=checkpoint, checkpoint_every=checkpoint_every, settings=s,
                           must_match=_MUST_MATCH + ("seeds", "batch", "fast"))
        finally:
            if bar is not None:
                bar.close()
        results = []
        for i in range(n):
            def back(t: torch.Tensor | None) -> ImageLike | None:
                return None if t is None else from_tensor(merge_alpha(t[i].float(), alphas[i]), forms[i])

            si = dict(s, seed=seeds[i])
            if run.diverged[i]:
                si["diverged"] = run.diverged[i]
                warnings.warn(f"restore_many: image {i} diverged: {run.diverged[i]}", RuntimeWarning, stacklevel=2)
            results.append(RestoreResult(
                image=back(run.current), ema_image=back(run.ema), losses=run.losses[i],
                psnrs=run.psnrs[i] if gts is not None else None,
                ema_psnrs=run.ema_psnrs[i] if gts is not None and s["ema"] is not None else None,
                oracle_psnr=run.oracle_psnr[i], oracle_iteration=run.oracle_iteration[i],
                oracle_image=back(run.oracle) if gts is not None else None, iterations=run.iterations,
                seconds=run.seconds,
                iterations_per_second=run.iterations_this_call / run.seconds if run.seconds > 0 else 0.0,
                rollbacks=run.rollbacks[i], settings=si,
            ))
        return results


def _state_tensors(step: DIPStep, ema: torch.Tensor | None, current: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Weights, BatchNorm buffers, Adam state and the output images, by name (snapshots and checkpoints)."""
    flat = {f"net.{k}": v for k, v in step.net.state_dict().items()}
    flat.update({f"opt.{k}": v for k, v in flatten_optimizer(step.optimizer).items()})
    if ema is not None:
        flat["ema"] = ema
    if current is not None:
        flat["current"] = current
    return flat


def _postfix(st: _RunState, has_gt: bool, ema_w: float | None) -> dict[str, Any]:
    """The progress bar's loss / PSNR / rollbacks of the last checked iteration."""
    post: dict[str, Any] = {"loss": f"{st.losses[-1]:.3g}"}
    if has_gt:
        seq = st.ema_psnrs if ema_w is not None else st.psnrs
        post["psnr"] = f"{seq[-1]:.2f}"
    if st.rollbacks:
        post["rollbacks"] = st.rollbacks
    return post


def _check_rollback(st: _RunState, why: str, can_roll_back: bool, max_in_a_row: int) -> None:
    """Count a rollback; raise when there is nothing to roll back to or the run keeps failing."""
    st.rollbacks += 1
    st.in_a_row += 1
    if not can_roll_back:
        raise RestorationDiverged(no_good_state(st.iteration, why))
    if st.in_a_row > max_in_a_row:
        raise RestorationDiverged(keeps_failing(st.iteration, st.in_a_row, why))


class _Eager:
    """DIP's reference loop: each iteration's loss is read on the host and checked before Adam's step.

    A NaN/Inf or a collapse (the observation PSNR dropping by more than ``backtrack_db``) reloads
    the last good weights, BatchNorm buffers and Adam state instead of stepping. ``iterate`` returns
    the callback's ``info``; ``flush`` has nothing to do (every iteration is checked at once).
    """

    def __init__(self, step: DIPStep, st: _RunState, gt: torch.Tensor | None, ema_w: float | None,
                 ema: torch.Tensor | None, current: torch.Tensor | None, oracle: torch.Tensor | None,
                 snap: dict[str, torch.Tensor] | None, backtrack_db: float | None, max_in_a_row: int) -> None:
        self.step, self.st, self.gt, self.ema_w = step, st, gt, ema_w
        self.ema, self.current, self.oracle, self.snap = ema, current, oracle, snap
        self.backtrack_db, self.max_in_a_row = backtrack_db, max_in_a_row
        self.done = 0

    def iterate(self, net_input: torch.Tensor) -> dict[str, Any]:
        st, step = self.st, self.step
        out, loss = step.forward_backward(net_input)
        lv = float(loss.detach())
        obs_psnr, why = judge(lv, math.isfinite(lv) and bool(torch.isfinite(out).all()), st.last_obs_psnr,
                              self.backtrack_db)
        st.losses.append(lv)
        rolled_back = why is not None
        p = ep = math.nan
        if why is not None:
            _check_rollback(st, why, self.snap is not None, self.max_in_a_row)
            snap = self.snap
            assert snap is not None
            step.net.load_state_dict({k[4:]: v for k, v in snap.items() if k.startswith("net.")})
            load_flat_optimizer(step.optimizer, {k[4:]: v for k, v in snap.items() if k.startswith("opt.")})
            step.reset_scaler()
            self.ema = snap["ema"].clone() if "ema" in snap else None
            self.current = snap["current"].clone() if "current" in snap else None
        else:
            st.in_a_row = 0
            st.last_obs_psnr = obs_psnr
            self.snap = copy_into(self.snap, _state_tensors(step, self.ema, self.current))
            step.apply()
            cur = self.current = out.detach()
            if self.ema_w is not None:
                self.ema = cur.clone() if self.ema is None else self.ema * self.ema_w + cur * (1.0 - self.ema_w)
            if self.gt is not None:
                p = float(psnr_per_image(cur, self.gt)[0])
                ep = float(psnr_per_image(self.ema, self.gt)[0]) if self.ema is not None else math.nan
                score = ep if self.ema is not None else p
                if st.oracle_psnr is None or score > st.oracle_psnr:
                    st.oracle_psnr, st.oracle_iteration = score, st.iteration
                    self.oracle = (self.ema if self.ema is not None else cur).clone()
        if self.gt is not None:
            st.psnrs.append(p)
            if self.ema_w is not None:
                st.ema_psnrs.append(ep)
        self.done += 1
        return {"loss": lv, "psnr": p, "ema_psnr": ep, "output": out.detach(), "rolled_back": rolled_back}

    def flush(self) -> int:
        """Iterations since the last flush (all already checked)."""
        n, self.done = self.done, 0
        return n

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """The state to save: the current one, the oracle image and the rollback snapshot."""
        t = _state_tensors(self.step, self.ema, self.current)
        if self.oracle is not None:
            t["oracle"] = self.oracle
        if self.snap is not None:
            t.update({f"snap.{k}": v for k, v in self.snap.items()})
        return t


class _Deferred:
    """The deferred-synchronisation loop's device state: k iterations run without a host read, then
    one read checks them all (NaN/Inf and DIP's backtracking), rolling the whole block back to the
    last checked state if any of them failed (a failure is seen at most k iterations late)."""

    def __init__(self, step: DIPStep, st: _RunState, gt: torch.Tensor | None, ema_w: float | None,
                 ema: torch.Tensor | None, current: torch.Tensor | None, oracle: torch.Tensor | None,
                 backtrack_db: float | None, max_in_a_row: int) -> None:
        self.step, self.st, self.gt, self.ema_w = step, st, gt, ema_w
        self.ema, self.current, self.oracle = ema, current, oracle
        self.backtrack_db, self.max_in_a_row = backtrack_db, max_in_a_row
        dev = step.device
        self.pending: list[torch.Tensor] = []
        self.best = torch.tensor(st.oracle_psnr if st.oracle_psnr is not None else -math.inf, dtype=torch.float64, device=dev)
        self.best_it = torch.tensor(st.oracle_iteration or 0, dtype=torch.float64, device=dev)
        self.snap = step.snapshot()
        self.saved = self._keep()
        self.has_snap = st.iteration > 0  # a resumed run starts from a checked state
        self.nan = torch.tensor(math.nan, dtype=torch.float64, device=dev)

    def _keep(self) -> tuple:
        c = lambda t: None if t is None else t.clone()  # noqa: E731
        return c(self.ema), c(self.current), c(self.oracle), self.best.clone(), self.best_it.clone()

    def iterate(self, net_input: torch.Tensor) -> None:
        out, loss = self.step(net_input)
        cur = out.detach().clone() if self.step.fast.cuda_graphs else out.detach()
        self.current = cur
        if self.ema_w is not None:
            self.ema = cur.clone() if self.ema is None else self.ema * self.ema_w + cur * (1.0 - self.ema_w)
        p = ep = self.nan
        if self.gt is not None:
            p = psnr_per_image(cur, self.gt)[0]
            ep = psnr_per_image(self.ema, self.gt)[0] if self.ema is not None else self.nan
            src = self.ema if self.ema is not None else cur
            score = ep if self.ema is not None else p
            better = score > self.best
            self.best = torch.where(better, score, self.best)
            self.best_it = torch.where(better, torch.full_like(self.best_it, self.st.iteration), self.best_it)
            self.oracle = src.clone() if self.oracle is None else torch.where(better, src, self.oracle)
        self.pending.append(torch.stack([loss.detach().double(), torch.isfinite(out).all().double(), p, ep]))

    def flush(self) -> int:
        """Read the pending iterations, check them, accept or roll back the block; returns its length."""
        st = self.st
        rows = torch.stack(self.pending).tolist()
        best, best_it = float(self.best), int(self.best_it)
        self.pending.clear()
        why = None
        first_bad = -1
        last = st.last_obs_psnr
        for j, (lv, fin, p, ep) in enumerate(rows):
            st.losses.append(lv)
            obs, bad = judge(lv, fin > 0, last, self.backtrack_db)
            if why is None and bad is not None:
                why, first_bad = bad, j
            if why is None:
                last = obs
            if self.gt is not None:
                st.psnrs.append(p if why is None else math.nan)
                if self.ema_w is not None:
                    st.ema_psnrs.append(ep if why is None else math.nan)
        if why is not None:
            # the run's initial state counts as good unless the very first iteration already failed
            _check_rollback(st, why, self.has_snap or first_bad > 0, self.max_in_a_row)
            self.step.restore(self.snap)
            c = lambda t: None if t is None else t.clone()  # noqa: E731
            ema, cur, orc, b, bi = self.saved
            self.ema, self.current, self.oracle, self.best, self.best_it = c(ema), c(cur), c(orc), b.clone(), bi.clone()
        else:
            st.in_a_row = 0
            st.last_obs_psnr = last
            if self.gt is not None and best_it > 0:
                st.oracle_psnr, st.oracle_iteration = best, best_it
            self.step.snapshot(self.snap)
            self.saved = self._keep()
            self.has_snap = True
        return len(rows)

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """The state to save (taken right after a flush, so it is the checked state)."""
        t = _state_tensors(self.step, self.ema, self.current)
        if self.oracle is not None:
            t["oracle"] = self.oracle
        return t


def _task_of(op: Operator) -> str | None:
    if isinstance(op, Denoising):
        return "denoise"
    if isinstance(op, SuperResolution):
        return "sr"
    if isinstance(op, Inpainting):
        return "inpaint"
    return None


# ----------------------------------------------------------------------------------------------
# checkpoints: safetensors (all tensors; the run state as JSON in its metadata) + a JSON sidecar

_MUST_MATCH = ("genotype", "task", "operator", "scale", "lr", "reg_noise_std", "ema", "input_channels",
               "input_scale", "seed", "device", "backtrack_db", "output_size", "observation_shape")


def _save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], settings: dict[str, Any], st: _RunState) -> None:
    save_checkpoint(path, tensors, {"format": CHECKPOINT_FORMAT, "settings": settings, "state": st.to_json()})


def _load_checkpoint(path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    tensors, meta = read_checkpoint(path, CHECKPOINT_FORMAT, "nasdip restore")
    check_resumable(path, meta, settings, _MUST_MATCH)
    out: dict[str, Any] = dict(tensors)
    out["__state__"] = meta["state"]
    return out
