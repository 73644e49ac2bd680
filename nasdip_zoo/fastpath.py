"""Fast paths for DIP's iteration: the same computation (to float tolerance), fewer seconds.

A :class:`FastPath` is a frozen set of options; :class:`DIPStep` is one DIP iteration (forward,
loss, backward, Adam step) built with those options. The restorer runs exactly this step and
``benchmarks/speed.py`` times exactly this step, so the measured speed is the restorer's.

Options: channels-last memory format; ``torch.compile`` (falls back to eager with one warning when
it is unavailable or fails); bf16/fp16 autocast (CUDA only; fp16 with a gradient scaler); Adam's
for-loop, foreach or fused kernels; reading the loss to the host only every ``sync_every``
iterations; and replaying the whole fixed-shape step as one CUDA graph.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FastPath", "DIPStep", "resolve_fast", "ADAM_IMPLS", "AUTOCAST_DTYPES"]

ADAM_IMPLS = ("default", "loop", "foreach", "fused")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_WARNED: set[str] = set()
_FP16_SCALE = 2.0**10  # DIP's MSE gradients are small: a modest first scale avoids skipped overflow steps


def _warn_once(key: str, msg: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


@dataclass(frozen=True)
class FastPath:
    """How to run DIP's iteration fast; the default instance is plain eager float32 (``FastPath.off()``).

    channels_last: NHWC memory format for the network, its input and its weights.
    compile: ``torch.compile`` the network (``compile_mode`` is passed as ``mode``); eager on failure.
    autocast: ``"bf16"`` or ``"fp16"`` mixed precision (CUDA only; the loss stays float32).
    adam: ``"default"`` (torch's choice), ``"loop"``, ``"foreach"`` or ``"fused"`` Adam kernels.
    sync_every: read loss/PSNR to the host every k iterations (NaN checks and backtracking happen
        there); 1 is DIP's per-iteration behaviour. A callback forces 1.
    cuda_graphs: capture the whole step (forward, backward, Adam) once and replay it (CUDA only).
    upsample: compute the cells' 2x bilinear/bicubic upsampling as separable fixed taps with a
        hand-written adjoint backward (the same numbers to float rounding; a much cheaper backward
        than ``upsample_bicubic2d_backward``, and a fresh output, so the in-place activation after it
        stays cheap); not applied under ``compile``, whose generated kernels fuse the interpolation.
    inplace: ReLU/LeakyReLU that follow another layer inside a block run in place (bit-identical
        numbers; one memory pass and one activation-sized allocation less per block).
    """

    channels_last: bool = False
    compile: bool = False
    compile_mode: str | None = None
    autocast: str | None = None
    adam: str = "default"
    sync_every: int = 1
    cuda_graphs: bool = False
    upsample: bool = False
    inplace: bool = False

    def __post_init__(self) -> None:
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"autocast={self.autocast!r} is not allowed; use None, 'bf16' or 'fp16'")
        if self.adam not in ADAM_IMPLS:
            raise ValueError(f"adam={self.adam!r} is not allowed; choose one of {ADAM_IMPLS}")
        if not isinstance(self.sync_every, int) or isinstance(self.sync_every, bool) or self.sync_every < 1:
            raise ValueError(f"sync_every={self.sync_every!r} must be a positive integer (1 = every iteration)")
        if self.cuda_graphs and self.autocast == "fp16":
            raise ValueError("cuda_graphs cannot be combined with autocast='fp16' (its gradient scaler syncs); use 'bf16'")

    @classmethod
    def off(cls) -> "FastPath":
        """Plain eager float32, DIP's reference loop (sync every iteration)."""
        return cls()

    @classmethod
    def auto(cls, device: str | torch.device = "cpu", iterations: int | None = None,
             net: nn.Module | None = None) -> "FastPath":
        """The fastest combination measured to compute the same thing on this kind of device.

        Measured with ``benchmarks/speed.py`` (``benchmarks/results/speed-cpu-*``; README ``## Speed``).
        CPU: separable upsampling, in-place activations, channels-last (not for networks with
        transposed convolutions, which it slows down: nasdip-inpaint) and, for runs of 200+
        iterations, the loss read every 25 iterations. CUDA: the same plus fused Adam; CUDA graphs
        stay opt-in (``"...+graphs"``) until they have been measured and checked on a GPU, which
        this release could not do (README ``## Speed``). All float32 (torch's default
        TF32 convolutions on CUDA): bf16 autocast stays opt-in, it changes the result beyond 0.05 dB.
        ``torch.compile`` is not chosen (minutes of compilation; its CPU backward failed with
        channels-last). Short runs keep DIP's per-iteration checks, where deferring saves little.
        """
        dev = torch.device(device)
        long_run = iterations is None or iterations >= 200
        sync = 25 if long_run else 1
        if dev.type == "cuda":
            return cls(channels_last=True, upsample=True, inplace=True, adam="fused", sync_every=sync)
        transposed = net is not None and any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())
        return cls(channels_last=not transposed, upsample=True, inplace=True, sync_every=sync)

    def check(self, device: str | torch.device) -> "FastPath":
        """Raise ValueError for options this device cannot run (autocast and CUDA graphs need CUDA)."""
        dev = torch.device(device)
        if dev.type != "cuda":
            if self.autocast is not None:
                raise ValueError(f"autocast={self.autocast!r} needs a CUDA device (got {dev}); use autocast=None on CPU")
            if self.cuda_graphs:
                raise ValueError(f"cuda_graphs=True needs a CUDA device (got {dev}); use cuda_graphs=False")
        return self

    @property
    def label(self) -> str:
        """A short name of the combination, e.g. ``cl+compile+bf16+fused+sync25+graphs`` (``eager`` for off)."""
        parts = []
        if self.channels_last:
            parts.append("cl")
        if self.compile:
            parts.append("compile" if not self.compile_mode else f"compile:{self.compile_mode}")
        if self.autocast:
            parts.append(self.autocast)
        if self.adam != "default":
            parts.append(self.adam)
        if self.sync_every > 1:
            parts.append(f"sync{self.sync_every}")
        if self.cuda_graphs:
            parts.append("graphs")
        if self.upsample:
            parts.append("up")
        if self.inplace:
            parts.append("ip")
        return "+".join(parts) or "eager"

    @classmethod
    def from_label(cls, label: str, device: str | torch.device = "cpu") -> "FastPath":
        """Parse a :attr:`label` (``eager``/``off``, ``auto``, or parts joined by ``+``: cl, compile,
        compile:MODE, bf16, fp16, loop, foreach, fused, syncK, graphs, up, ip)."""
        label = label.strip()
        if label in ("eager", "off", ""):
            return cls.off()
        if label == "auto":
            return cls.auto(device)
        kw: dict[str, Any] = {}
        for part in label.split("+"):
            if part == "cl":
                kw["channels_last"] = True
            elif part == "compile" or part.startswith("compile:"):
                kw["compile"] = True
                kw["compile_mode"] = part.split(":", 1)[1] if ":" in part else None
            elif part in AUTOCAST_DTYPES:
                kw["autocast"] = part
            elif part in ADAM_IMPLS:
                kw["adam"] = part
            elif part.startswith("sync") and part[4:].isdigit():
                kw["sync_every"] = int(part[4:])
            elif part == "graphs":
                kw["cuda_graphs"] = True
            elif part == "up":
                kw["upsample"] = True
            elif part == "ip":
                kw["inplace"] = True
            else:
                raise ValueError(
                    f"fast path {label!r}: unknown part {part!r}; use eager, auto or parts joined by '+' "
                    "(cl, compile, compile:MODE, bf16, fp16, loop, foreach, fused, syncK, graphs, up, ip)"
                )
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> "FastPath":
        return replace(self, **changes)


def resolve_fast(fast: "str | FastPath | None", device: str | torch.device) -> FastPath:
    """``"auto"`` -> :meth:`FastPath.auto` for the device, ``"off"``/None -> eager, a label (``"cl+sync25"``)
    is parsed, a FastPath is checked against the device."""
    if fast is None:
        return FastPath.off()
    if isinstance(fast, str):
        try:
            return FastPath.from_label(fast, device).check(device)
        except ValueError as e:
            raise ValueError(f"fast={fast!r} is not allowed: {e}; use 'auto', 'off', a label or a FastPath(...)") from None
    if isinstance(fast, FastPath):
        return fast.check(device)
    raise ValueError(f"fast={fast!r} is not allowed; use 'auto', 'off', a label such as 'cl+sync25' or a FastPath(...)")


# 2x upsampling (align_corners=False) as fixed taps: output 2i and 2i+1 are 4-tap (bicubic, A=-0.75)
# or 2-tap (bilinear) combinations of replicate-padded neighbours, exactly torch's coefficients
# (they are binary fractions) and its border clamping; only the order of float additions differs.
_A = -0.75


def _cc1(x: float) -> float:
    return ((_A + 2) * x - (_A + 3)) * x * x + 1


def _cc2(x: float) -> float:
    return ((_A * x - 5 * _A) * x + 8 * _A) * x - 4 * _A


_TAPS = {  # mode -> (pad, even taps starting at offset 0, odd taps starting at offset 1)
    "bicubic": (2, (_cc2(1.75), _cc1(0.75), _cc1(0.25), _cc2(1.25)), (_cc2(1.25), _cc1(0.25), _cc1(0.75), _cc2(1.75))),
    "bilinear": (1, (0.25, 0.75), (0.75, 0.25)),
}


def _taps_pass(src: torch.Tensor, dim: int, taps: tuple, out: torch.Tensor) -> None:
    """``out`` (size 2n along ``dim``) <- the even and odd tap sums of ``src`` (size n + 2*pad along ``dim``)."""
    pad, even, odd = taps
    n = src.shape[dim] - 2 * pad
    pairs = out.unflatten(dim, (n, 2))
    for parity, weights in ((0, even), (1, odd)):
        dst = pairs.select(dim + 1, parity)
        torch.mul(src.narrow(dim, parity, n), weights[0], out=dst)
        for k in range(1, len(weights)):
            dst.add_(src.narrow(dim, parity + k, n), alpha=weights[k])  # one fused multiply-add per tap


def _taps_pass_adjoint(grad: torch.Tensor, dim: int, taps: tuple) -> torch.Tensor:
    """The adjoint of :func:`_taps_pass`: each output's gradient added back onto the taps it read."""
    pad, even, odd = taps
    n = grad.shape[dim] // 2
    shape = list(grad.shape)
    shape[dim] = n + 2 * pad
    src = grad.new_empty(shape)
    pairs = grad.unflatten(dim, (n, 2))
    torch.mul(pairs.select(dim + 1, 0), even[0], out=src.narrow(dim, 0, n))  # writes all but the last 2*pad
    src.narrow(dim, n, 2 * pad).zero_()
    for parity, weights in ((0, even), (1, odd)):
        g = pairs.select(dim + 1, parity)
        for k, w in enumerate(weights):
            if parity or k:
                src.narrow(dim, parity + k, n).add_(g, alpha=w)
    return src


def _nhwc(x: torch.Tensor) -> bool:
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


class _SeparableUp2x(torch.autograd.Function):
    """Forward: replicate-pad, then the W pass and the H pass into fresh tensors; backward: their adjoints.

    One autograd node instead of ~40 (each tap's mul, narrow and add), a backward that accumulates in
    place instead of zero-filling a padded tensor per tap, and an output that is not a view (so an
    in-place activation after it needs no copy-on-write of its gradient).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, mode: str) -> torch.Tensor:  # type: ignore[override]
        taps = _TAPS[mode]
        pad = taps[0]
        ctx.taps, ctx.nhwc = taps, _nhwc(x)
        ctx.save_for_backward(x)
        xp = F.pad(x, (pad, pad, pad, pad), mode="replicate")
        *lead, h, w = x.shape
        if ctx.nhwc:  # work on NHWC views so every pass reads and writes contiguous channel vectors
            n, c = x.shape[0], x.shape[1]
            t = xp.permute(0, 2, 3, 1)
            mid = x.new_empty((n, h + 2 * pad, 2 * w, c))
            _taps_pass(t, 2, taps, mid)
            out = torch.empty((n, c, 2 * h, 2 * w), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
            _taps_pass(mid, 1, taps, out.permute(0, 2, 3, 1))
            return out
        xp = xp.contiguous()
        mid = x.new_empty((*lead, h + 2 * pad, 2 * w))
        _taps_pass(xp, xp.dim() - 1, taps, mid)
        out = x.new_empty((*lead, 2 * h, 2 * w))
        _taps_pass(mid, mid.dim() - 2, taps, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        taps = ctx.taps
        pad = taps[0]
        if ctx.nhwc:
            g = grad.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)
            gp = _taps_pass_adjoint(_taps_pass_adjoint(g, 1, taps), 2, taps).permute(0, 3, 1, 2)
        else:
            g = grad.contiguous()
            gp = _taps_pass_adjoint(_taps_pass_adjoint(g, g.dim() - 2, taps), g.dim() - 1, taps)
        return torch.ops.aten.replication_pad2d_backward(gp, x, [pad, pad, pad, pad]), None


class SeparableUpsample2x(nn.Module):
    """``F.interpolate(x, scale_factor=2, mode=bicubic|bilinear, align_corners=False)`` as separable fixed taps.

    The same numbers to float rounding (torch's coefficients and border clamping; only the order of
    additions differs), with a hand-written backward: the adjoint taps accumulated in place, several
    times cheaper than autograd's ``upsample_bicubic2d_backward``. Keeps the input's memory format.
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode not in _TAPS:
            raise ValueError(f"SeparableUpsample2x: mode {mode!r} is not one of {sorted(_TAPS)}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SeparableUp2x.apply(x, self.mode)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def separable_upsampling(net: nn.Module) -> int:
    """Swap the network's bicubic/bilinear 2x ``Interpolate`` modules for :class:`SeparableUpsample2x` (in place)."""
    from .cells import Interpolate

    n = 0
    for parent in list(net.modules()):
        for name, child in list(parent._modules.items()):
            if isinstance(child, Interpolate) and child.mode in _TAPS:
                parent._modules[name] = SeparableUpsample2x(child.mode)
                n += 1
    return n


def inplace_activations(net: nn.Module) -> int:
    """Make every ReLU/LeakyReLU that is not the first layer of an ``nn.Sequential`` run in place.

    Its input is then the previous layer's private output (a convolution, BatchNorm or upsampling,
    none of which needs its output for backward), so the numbers are bit-identical; a wrong case
    would make autograd raise, never silently differ. Returns how many were switched.
    """
    n = 0
    for seq in net.modules():
        if isinstance(seq, nn.Sequential):
            for i, m in enumerate(seq):
                if i > 0 and isinstance(m, (nn.ReLU, nn.LeakyReLU)) and not m.inplace:
                    m.inplace = True
                    n += 1
    return n


def _scalar_dtype() -> torch.dtype:
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class DIPStep:
    """One DIP iteration on ``net``: ``mse(operator(net(x)), target)``, backward, Adam; built per :class:`FastPath`.

    ``forward_backward(x)`` returns the output and the (device) loss with gradients in place;
    ``apply()`` takes the Adam step; ``__call__`` does both. ``snapshot()``/``restore(snap)`` copy
    weights, BatchNorm buffers and Adam state in place (what backtracking and CUDA graphs need).
    """

    def __init__(
        self,
        net: nn.Module,
        operator: Callable[[torch.Tensor], torch.Tensor],
        target: torch.Tensor,
        lr: float,
        fast: FastPath | None = None,
        expected_output: tuple[int, ...] | None = None,
    ) -> None:
        self.fast = fast = fast or FastPath.off()
        self.expected_output = tuple(expected_output) if expected_output is not None else None
        self.device = target.device
        fast.check(self.device)
        self.net = net
        if fast.upsample and not fast.compile:  # inductor fuses the interpolation itself (and fails on
            separable_upsampling(net)              # replication_pad2d_backward in channels-last, torch 2.13)
        if fast.inplace:
            inplace_activations(net)
        if fast.channels_last:
            net.to(memory_format=torch.channels_last)
        self.operator = operator
        self.target = target
        self.params = [p for p in net.parameters() if p.requires_grad]
        kw: dict[str, Any] = {}
        if fast.adam == "loop":
            kw["foreach"] = False
        elif fast.adam == "foreach":
            kw["foreach"] = True
        elif fast.adam == "fused":
            kw["fused"] = True
        if fast.cuda_graphs:
            kw["capturable"] = True
        self.optimizer = torch.optim.Adam(self.params, lr=lr, **kw)
        self._amp_dtype = AUTOCAST_DTYPES.get(fast.autocast) if fast.autocast else None
        self.scaler = torch.amp.GradScaler("cuda", init_scale=_FP16_SCALE) if fast.autocast == "fp16" else None
        self._model: Callable[[torch.Tensor], torch.Tensor] = net
        self._compiled_ok = False
        if fast.compile:
            try:
                self._model = torch.compile(net, mode=fast.compile_mode, dynamic=False)
            except Exception as e:  # noqa: BLE001 - any failure means: run eagerly
                _warn_once("compile", f"torch.compile is unavailable ({type(e).__name__}: {e}); running eagerly")
                self._model = net
        self._graph: Any = None
        self._graph_failed = False
        self._static: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ the step
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self._amp_dtype is None:
            return contextlib.nullcontext()
        # the autocast weight cache must be off inside a captured graph (each replay re-casts the weights)
        return torch.autocast(device_type="cuda", dtype=self._amp_dtype, cache_enabled=not self.fast.cuda_graphs)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """The network input in the step's memory format."""
        return x.contiguous(memory_format=torch.channels_last) if self.fast.channels_last else x

    def _fb(self, model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            out = model(x)
            if self.expected_output is not None and tuple(out.shape) != self.expected_output:
                want = "x".join(map(str, self.expected_output))
                raise ValueError(f"the network returned {tuple(out.shape)}, expected {want} (check its output channels)")
            measured = self.operator(out)
            if measured.shape != self.target.shape:
                raise ValueError(
                    f"the operator maps the {tuple(out.shape)} image to {tuple(measured.shape)}, "
                    f"but the observation is {tuple(self.target.shape)}"
                )
        if self._amp_dtype is not None:
            out, measured = out.float(), measured.float()
        loss = F.mse_loss(measured, self.target)
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        return out, loss

    def forward_backward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and backward on input ``x``: returns ``(output, loss)`` (device tensors, no host sync)."""
        x = self.prepare_input(x)
        if self._model is not self.net and not self._compiled_ok:
            try:
                res = self._fb(self._model, x)
                self._compiled_ok = True
                return res
            except Exception as e:  # noqa: BLE001 - the compiler failed: the same step eagerly
                if isinstance(e, (ValueError, KeyboardInterrupt)):
                    raise
                _warn_once("compile-run", f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}); running eagerly")
                self._model = self.net
        return self._fb(self._model, x)

    def apply(self) -> None:
        """Adam's step on the gradients of the last :meth:`forward_backward`."""
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One whole iteration (replayed as a CUDA graph when ``cuda_graphs`` is on and capture worked)."""
        if self.fast.cuda_graphs and not self._graph_failed:
            if self._graph is None:
                self._capture(x)
            if self._graph is not None:
                static_in, static_out, static_loss = self._static  # type: ignore[misc]
                static_in.copy_(self.prepare_input(x))
                self._graph.replay()
                return static_out, static_loss
        out, loss = self.forward_backward(x)
        self.apply()
        return out, loss

    # ------------------------------------------------------------------ state
    def _ensure_optimizer_state(self) -> None:
        """Create Adam's state as its first step would (zero moments, step 0): same numbers, fixed tensors."""
        opt = self.optimizer
        group = opt.param_groups[0]
        on_device = bool(group.get("capturable") or group.get("fused"))
        for p in self.params:
            st = opt.state[p]
            if not st:
                st["step"] = (torch.zeros((), dtype=_scalar_dtype(), device=p.device) if on_device
                              else torch.tensor(0.0, dtype=_scalar_dtype()))
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def state_tensors(self) -> list[torch.Tensor]:
        """Every tensor an iteration changes: parameters, buffers, Adam's moments and step counts."""
        self._ensure_optimizer_state()
        ts = list(self.params) + [b for b in self.net.buffers()]
        for p in self.params:
            st = self.optimizer.state[p]
            ts += [st["exp_avg"], st["exp_avg_sq"], st["step"]]
        return ts

    def snapshot(self, into: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Copy the state (into preallocated tensors when given: no allocation in the loop)."""
        with torch.no_grad():
            src = self.state_tensors()
            if into is None:
                return [t.detach().clone() for t in src]
            for d, s in zip(into, src):
                d.copy_(s)
            return into

    def restore(self, snap: list[torch.Tensor]) -> None:
        """Copy a :meth:`snapshot` back in place (the tensors a captured graph reads stay the same)."""
        with torch.no_grad():
            for d, s in zip(self.state_tensors(), snap):
                d.copy_(s)
        self.reset_scaler()

    def reset_scaler(self) -> None:
        """A fresh fp16 gradient scale (after a rollback); nothing without fp16."""
        if self.scaler is not None:
            self.scaler = torch.amp.GradScaler("cuda", init_scale=_FP16_SCALE)

    # ------------------------------------------------------------------ CUDA graphs
    def _capture(self, x: torch.Tensor) -> None:
        """Warm up on a side stream, put the state back, capture one whole step; eager on any failure."""
        snap = self.snapshot()
        try:
            static_in = self.prepare_input(x).clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):  # compile/cuDNN autotune/allocator warm-up outside the capture
                    self.forward_backward(static_in)
                    self.optimizer.step()
            torch.cuda.current_stream().wait_stream(side)
            self.restore(snap)
            graph = torch.cuda.CUDAGraph()
            self.optimizer.zero_grad(set_to_none=True)
            with torch.cuda.graph(graph):
                static_out, static_loss = self._fb(self._model, static_in)
                self.optimizer.step()
            self._graph, self._static = graph, (static_in, static_out, static_loss)
        except Exception as e:  # noqa: BLE001 - capture is an optimisation: never a failure
            self._graph, self._graph_failed = None, True
            torch.cuda.synchronize()
            self.restore(snap)
            _warn_once("graphs", f"CUDA graph capture failed ({type(e).__name__}: {str(e)[:200]}); running without graphs")
