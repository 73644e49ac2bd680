"""DoubleDIP dehazing (Gandelsman et al., CVPR 2019) with NAS-DIP generators (paper Sec. 4.3, Fig. 8).

The hazy image is the layer composition I = t * J + (1 - t) * A: one generator draws the clear image J
(3 channels), one the transmission map t (1 channel), and the airlight A is given, estimated with the
dark channel prior, or drawn by a third generator. Each generator is the network of any genotype
(``"dip-skip"`` is the U-Net variant the paper compares against). Losses as in DoubleDIP: MSE of the
composition to I, a smoothness term on t (its deviation from its local 5x5 mean), and, for a generated
A, smoothness of A plus an anchor to the initial A for the first iterations. The final t is refined
with a guided filter (written here in torch) at full resolution and J is recovered as
(I - (1 - t) A) / t.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..genotype import Genotype
from ..imageio import ImageLike, split_alpha, to_tensor
from ..network import build_nasdip
from ._common import optimisation_step, progress_bar, resolve_device, resolve_genotype

__all__ = [
    "DoubleDIPDehazer",
    "DehazeResult",
    "box_filter",
    "guided_filter",
    "dark_channel",
    "estimate_airlight",
    "smoothness_loss",
    "compose_haze",
]

AIRLIGHT_MODES = ("fixed", "dark_channel", "generated")


# ----------------------------------------------------------------------------- image operators
def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the (2r+1)^2 window clipped to the image (cumulative sums: O(1) per pixel)."""
    if radius < 0:
        raise ValueError(f"radius={radius} must be >= 0")
    h, w = x.shape[-2:]

    def window_sum(t: torch.Tensor, dim: int, n: int) -> torch.Tensor:
        c = F.pad(torch.cumsum(t, dim=dim), (0, 0, 1, 0) if dim == -2 else (1, 0))
        idx = torch.arange(n, device=t.device)
        hi = (idx + radius + 1).clamp(max=n)
        lo = (idx - radius).clamp(min=0)
        return c.index_select(dim, hi) - c.index_select(dim, lo)

    s = window_sum(window_sum(x, -2, h), -1, w)
    ones = torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device)
    count = window_sum(window_sum(ones, -2, h), -1, w)
    return s / count


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float = 1e-4) -> torch.Tensor:
    """He et al.'s guided filter: ``src`` (N x 1 x H x W) filtered edge-aware by ``guide`` (N x C x H x W).

    With a colour guide each pixel solves a C x C ridge system (the colour guided filter, as OpenCV's
    ximgproc.guidedFilter does for 3-channel guides).
    """
    if guide.shape[-2:] != src.shape[-2:] or src.shape[1] != 1:
        raise ValueError(
            f"guided_filter: src must be N x 1 x H x W with the guide's H x W, got {tuple(src.shape)} "
            f"and guide {tuple(guide.shape)}"
        )
    g, p = guide.double(), src.double()
    n, c, h, w = g.shape
    mean_g, mean_p = box_filter(g, radius), box_filter(p, radius)
    cov_gp = box_filter(g * p, radius) - mean_g * mean_p  # N x C x H x W
    gg = g.unsqueeze(1) * g.unsqueeze(2)  # N x C x C x H x W
    var = box_filter(gg.reshape(n, c * c, h, w), radius).reshape(n, c, c, h, w)
    var = var - mean_g.unsqueeze(1) * mean_g.unsqueeze(2)
    sigma = var.permute(0, 3, 4, 1, 2) + eps * torch.eye(c, dtype=g.dtype, device=g.device)
    a = torch.linalg.solve(sigma, cov_gp.permute(0, 2, 3, 1).unsqueeze(-1)).squeeze(-1)  # N x H x W x C
    a = a.permute(0, 3, 1, 2)
    b = mean_p - (a * mean_g).sum(1, keepdim=True)
    q = (box_filter(a, radius) * g).sum(1, keepdim=True) + box_filter(b, radius)
    return q.to(src.dtype)


def dark_channel(image: torch.Tensor, window: int = 15) -> torch.Tensor:
    """He et al.'s dark channel: min over colour channels and a window x window patch (edge padding)."""
    m = image.min(dim=1, keepdim=True).values
    r = window // 2
    padded = F.pad(m, (r, r, r, r), mode="replicate")
    return -F.max_pool2d(-padded, window, stride=1)


def estimate_airlight(image: torch.Tensor, fraction: float = 1e-4, window: int = 15) -> torch.Tensor:
    """Dark-channel-prior airlight (He et al. Sec. 4.4, as DoubleDIP's get_atmosphere): among the
    brightest ``fraction`` of dark-channel pixels, the highest intensity per channel. Returns N x 3 x 1 x 1."""
    n, c = image.shape[:2]
    dark = dark_channel(image, window).reshape(n, -1)
    k = max(1, int(dark.shape[1] * fraction))
    idx = dark.topk(k, dim=1).indices  # N x k
    pixels = image.reshape(n, c, -1).gather(2, idx.unsqueeze(1).expand(n, c, k))
    return pixels.max(dim=2).values.reshape(n, c, 1, 1)


def smoothness_loss(x: torch.Tensor, window: int = 5) -> torch.Tensor:
    """DoubleDIP's regulariser on t (and on a generated A): mean squared difference between each pixel
    and its local window mean (valid region, gray level); zero for a locally constant map."""
    gray = x.mean(dim=1, keepdim=True)
    r = window // 2
    return F.mse_loss(gray[..., r:-r, r:-r], F.avg_pool2d(gray, window, stride=1))


def compose_haze(clear: torch.Tensor, t: torch.Tensor, airlight: torch.Tensor) -> torch.Tensor:
    """The haze model I = t * J + (1 - t) * A."""
    return t * clear + (1 - t) * airlight


def _meshgrid(h: int, w: int, device: torch.device) -> torch.Tensor:
    ys = torch.linspace(0, 1, h, device=device)
    xs = torch.linspace(0, 1, w, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy]).unsqueeze(0)


# ----------------------------------------------------------------------------- the dehazer
@dataclass
class DehazeResult:
    """Dehazing output at the input's resolution (tensors 1 x C x H x W in [0, 1]).

    ``J`` is the recovered clear image (from the guided-filtered ``t``), ``J_generated`` the J
    generator's own output, ``t`` the refined transmission, ``t_generated`` the raw one, ``A`` the
    airlight (1 x 3 x 1 x 1, or 1 x 3 x H x W when generated), ``losses`` the total loss per iteration.
    ``best_iteration`` is the iteration whose outputs were kept (lowest reconstruction loss; no ground
    truth is used).
    """

    J: torch.Tensor
    t: torch.Tensor
    A: torch.Tensor
    J_generated: torch.Tensor
    t_generated: torch.Tensor
    losses: list[float] = field(default_factory=list)
    best_iteration: int = 0
    interrupted: bool = False


class DoubleDIPDehazer:
    """DoubleDIP's dehazing with a NAS-DIP generator per layer (any genotype, zoo name or JSON path).

    Defaults follow DoubleDIP's ``dehazing.py``: Adam lr 1e-3, 8-channel U[0,0.1) noise inputs, input
    noise regularisation 1/30 on the J generator, smoothness weight 0.005 on t, t clipped to [0.1, 1]
    after guided filtering (eps 1e-4), images scaled below 800 px for the optimisation. ``channels``
    sets every generator's width (DoubleDIP's U-Nets are 8..128 wide; the zoo's are 128).
    """

    def __init__(
        self,
        j_genotype: Genotype | str | os.PathLike[str] = "nasdip-denoise",
        t_genotype: Genotype | str | os.PathLike[str] | None = None,
        airlight: str = "fixed",
        iterations: int = 4000,
        lr: float = 1e-3,
        channels: int | None = None,
        input_channels: int = 8,
        reg_noise_std: float = 1 / 30,
        smoothness_weight: float = 0.005,
        airlight_smoothness_weight: float = 0.1,
        airlight_anchor_iterations: int = 1000,
        guided_radius: int | None = None,
        guided_eps: float = 1e-4,
        t_min: float = 0.1,
        max_size: int = 800,
        seed: int = 0,
        device: str | torch.device = "auto",
        progress: bool = True,
    ) -> None:
        if airlight not in AIRLIGHT_MODES:
            raise ValueError(f"airlight={airlight!r} is not allowed; choose one of {list(AIRLIGHT_MODES)}")
        for name, v in (("iterations", iterations), ("input_channels", input_channels), ("max_size", max_size)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}={v!r} is not allowed; it must be a positive integer")
        if not lr > 0:
            raise ValueError(f"lr={lr!r} must be > 0")
        if not 0 < t_min < 1:
            raise ValueError(f"t_min={t_min!r} must lie in (0, 1); DoubleDIP uses 0.1")
        self.j_genotype = resolve_genotype(j_genotype, channels)
        self.t_genotype = resolve_genotype(t_genotype if t_genotype is not None else j_genotype, channels)
        self.airlight_mode = airlight
        self.iterations, self.lr = iterations, float(lr)
        self.input_channels, self.reg_noise_std = input_channels, float(reg_noise_std)
        self.smoothness_weight = float(smoothness_weight)
        self.airlight_smoothness_weight = float(airlight_smoothness_weight)
        self.airlight_anchor_iterations = int(airlight_anchor_iterations)
        self.guided_radius, self.guided_eps, self.t_min = guided_radius, float(guided_eps), float(t_min)
        self.max_size, self.seed, self.progress = max_size, seed, progress
        self.device = resolve_device(device)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _airlight_tensor(value: Sequence[float] | torch.Tensor, device: torch.device) -> torch.Tensor:
        a = torch.as_tensor(value, dtype=torch.float32, device=device).reshape(-1)
        if a.numel() == 1:
            a = a.expand(3)
        if a.numel() != 3 or not torch.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise ValueError(f"airlight={value!r} must be 3 RGB values (or one gray value) in [0, 1]")
        return a.reshape(1, 3, 1, 1).clone()

    def _work_size(self, h: int, w: int) -> tuple[int, int]:
        scale = min(1.0, (self.max_size - 1) / max(h, w))
        return max(1, round(h * scale)), max(1, round(w * scale))

    # ------------------------------------------------------------------ main entry
    def dehaze(
        self,
        hazy: ImageLike,
        airlight: Sequence[float] | torch.Tensor | None = None,
        callback: Callable[[int, float], None] | None = None,
    ) -> DehazeResult:
        """Dehaze one RGB image (PIL, numpy or tensor in [0, 1]); ``airlight`` is A for 'fixed' (required)
        and the anchor for 'generated' (else the dark-channel estimate). Ctrl-C returns the best so far."""
        image, _ = to_tensor(hazy)
        image, _alpha = split_alpha(image)
        if image.shape[0] != 1 or image.shape[1] != 3:
            raise ValueError(
                f"dehaze() needs one RGB image, got shape {tuple(image.shape)}; convert gray images to RGB first"
            )
        if min(image.shape[-2:]) < 8:
            raise ValueError(f"dehaze() needs an image of at least 8 x 8 pixels, got {tuple(image.shape[-2:])}")
        dev = self.device
        image = image.to(dev)
        full_h, full_w = image.shape[-2:]
        h, w = self._work_size(full_h, full_w)
        work = image if (h, w) == (full_h, full_w) else F.interpolate(image, (h, w), mode="area")

        if airlight is not None:
            a0 = self._airlight_tensor(airlight, dev)
        elif self.airlight_mode == "fixed":
            raise ValueError("airlight='fixed' needs dehaze(hazy, airlight=(r, g, b)); or use airlight='dark_channel'")
        else:
            a0 = estimate_airlight(work)

        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        torch.manual_seed(self.seed)
        j_net = build_nasdip(self.j_genotype, self.input_channels, 3).to(dev)
        t_net = build_nasdip(self.t_genotype, self.input_channels, 1).to(dev)
        z_j = (torch.rand(1, self.input_channels, h, w, generator=gen) * 0.1).to(dev)
        z_t = (torch.rand(1, self.input_channels, h, w, generator=gen) * 0.1).to(dev)
        params = list(j_net.parameters()) + list(t_net.parameters())
        a_net = None
        if self.airlight_mode == "generated":
            a_net = build_nasdip(self.j_genotype, 2, 3).to(dev)
            z_a = _meshgrid(h, w, dev)
            params += list(a_net.parameters())
        opt = torch.optim.Adam(params, lr=self.lr)

        losses: list[float] = []
        best: tuple[float, int, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        bar = progress_bar(self.iterations, self.progress, "dehaze")
        interrupted = False
        try:
            for it in range(self.iterations):
                last = it == self.iterations - 1
                noise = 0.0 if last else self.reg_noise_std
                zj = z_j + torch.randn_like(z_j) * noise if noise else z_j
                j = j_net(zj)
                t = t_net(z_t)
                if a_net is not None:
                    za = z_a + torch.randn_like(z_a) * noise if noise else z_a
                    a = a_net(za)
                else:
                    a = a0
                recon = F.mse_loss(compose_haze(j, t, a), work)
                loss = recon + self.smoothness_weight * smoothness_loss(t)
                if a_net is not None:
                    loss = loss + self.airlight_smoothness_weight * smoothness_loss(a)
                    if it < self.airlight_anchor_iterations:
                        loss = loss + F.mse_loss(a, a0.expand_as(a))
                r = recon.item()
                if best is None or r <= best[0]:
                    best = (r, it, j.detach(), t.detach(), a.detach())
                optimisation_step(it, loss, opt, losses, bar, callback)
        except KeyboardInterrupt:
            interrupted = True
            if best is None:
                raise
        finally:
            bar.close()
        assert best is not None
        _, best_it, j_out, t_out, a_out = best
        return self._finish(image, j_out, t_out, a_out, losses, best_it, interrupted)

    def _finish(self, image, j_out, t_out, a_out, losses, best_it, interrupted) -> DehazeResult:
        """Bring t and A to full resolution, refine t by the guided filter, invert the haze model."""
        full = image.shape[-2:]

        def up(x: torch.Tensor) -> torch.Tensor:
            return x if x.shape[-2:] == full else F.interpolate(x, full, mode="bilinear", align_corners=False)

        t_full, j_full = up(t_out).clamp(0, 1), up(j_out).clamp(0, 1)
        a_full = up(a_out) if a_out.shape[-1] > 1 else a_out
        radius = self.guided_radius
        if radius is None:  # DoubleDIP: 50 px on images of ~600-800 px
            radius = max(1, min(50, round(min(full) / 12)))
        t_ref = guided_filter(image, t_full, radius, self.guided_eps).clamp(self.t_min, 1.0)
        clear = ((image - (1 - t_ref) * a_full) / t_ref).clamp(0, 1)
        return DehazeResult(
            J=clear.cpu(),
            t=t_ref.cpu(),
            A=a_full.clamp(0, 1).cpu(),
            J_generated=j_full.cpu(),
            t_generated=t_full.cpu(),
            losses=losses,
            best_iteration=best_it,
            interrupted=interrupted,
        )

