"""CompMirror's deep matrix factorization (Aittala et al., NeurIPS 2019) with a searched upsampling cell.

An observation Y (h x w) is explained as the product T @ L of two positive factors, T (h x q) and
L (q x w), each drawn by its own convolutional generator from a learnable latent through five 2x
upsampling steps (CompMirror's 1-D demo, ``factorization_1d.py``). NAS-DIP (paper Sec. 4.3, Fig. 9)
swaps those upsampling steps for the searched cell of the denoising genotype; ``upsampling`` picks
any genotype's cell or CompMirror's plain bilinear upsampling. The loss is CompMirror's: a small L1
term on T @ L - Y plus L1 on the differences of its row and column gradients (the smoothness terms).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cells import upsampling_cell
from ..genotype import Genotype, UpsamplingCell
from ._common import optimisation_step, progress_bar, resolve_device

__all__ = ["FactorGenerator", "DeepMatrixFactorization", "FactorizationResult", "scale_aligned_error"]

UPSAMPLING_STEPS = 5
DEFAULT_WIDTHS = (64, 32, 64, 64, 128, 128)  # CompMirror: latent width, then one width per step


def _coords(n: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """CoordConv channels: y and x in [-1, 1]."""
    ys = torch.linspace(-1, 1, h, dtype=like.dtype, device=like.device).view(1, 1, h, 1).expand(n, 1, h, w)
    xs = torch.linspace(-1, 1, w, dtype=like.dtype, device=like.device).view(1, 1, 1, w).expand(n, 1, h, w)
    return torch.cat([ys, xs], 1)


class _Bilinear(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class FactorGenerator(nn.Module):
    """One factor's generator: learnable latent -> 5 x (CoordConv 4x4, 2x upsampling step, tanh) ->
    two 3x3 CoordConvs -> exp(x - 2) (positive). Output 1 x 1 x (32 * latent H) x (32 * latent W).

    ``upsampling`` is 'bilinear' (CompMirror) or a genotype / cell / zoo name whose 2x cell is used.
    ``aux`` is an optional fixed 1 x k x H x W map concatenated before the final convs (CompMirror feeds
    the T generator the observation's row sums).
    """

    def __init__(
        self,
        latent_size: tuple[int, int],
        upsampling: Genotype | UpsamplingCell | str = "nasdip-denoise",
        widths: Sequence[int] = DEFAULT_WIDTHS,
        aux: torch.Tensor | None = None,
        latent_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        widths = tuple(widths)
        if len(widths) != UPSAMPLING_STEPS + 1 or any(not isinstance(c, int) or c < 2 for c in widths):
            raise ValueError(
                f"widths={widths!r} must be {UPSAMPLING_STEPS + 1} integers >= 2 (latent width, then one per step)"
            )
        self.latent = nn.Parameter(torch.randn(1, widths[0], *latent_size))
        self.convs = nn.ModuleList(nn.Conv2d(widths[i] + 2, widths[i + 1], 4) for i in range(UPSAMPLING_STEPS))
        if isinstance(upsampling, str) and upsampling == "bilinear":
            self.ups = nn.ModuleList(_Bilinear() for _ in range(UPSAMPLING_STEPS))
        else:
            self.ups = nn.ModuleList(upsampling_cell(upsampling, c, c) for c in widths[1:])
        for conv in self.convs:
            nn.init.xavier_normal_(conv.weight)
            nn.init.constant_(conv.bias, 0.001)
        self.register_buffer("aux", aux if aux is not None else torch.zeros(1, 0, 1, 1), persistent=False)
        n_aux = aux.shape[1] if aux is not None else 0
        self.final1 = nn.Conv2d(widths[-1] + 2 + n_aux, widths[-1] // 2, 3)
        self.final2 = nn.Conv2d(widths[-1] // 2 + 2, 1, 3)
        for conv in (self.final1, self.final2):
            nn.init.xavier_normal_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.drop = nn.Dropout2d(latent_dropout) if latent_dropout > 0 else nn.Identity()

    def _coordconv(self, conv: nn.Conv2d, x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
        x = F.pad(x, pad, mode="replicate")
        return conv(torch.cat([x, _coords(x.shape[0], *x.shape[-2:], x)], 1))

    def forward(self) -> torch.Tensor:
        x = self.drop(self.latent)
        for conv, up in zip(self.convs, self.ups):
            x = torch.tanh(up(self._coordconv(conv, x, (1, 2, 1, 2))))
        if self.aux.shape[1]:
            if self.aux.shape[-2:] != x.shape[-2:]:
                raise ValueError(f"aux map is {tuple(self.aux.shape[-2:])}, the generator draws {tuple(x.shape[-2:])}")
            x = torch.cat([x, self.aux], 1)
        x = F.leaky_relu(self._coordconv(self.final1, x, (1, 1, 1, 1)), 0.1)
        return torch.exp(self._coordconv(self.final2, x, (1, 1, 1, 1)) - 2)


def _center_crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top : top + h, left : left + w].reshape(h, w)


def scale_aligned_error(estimate: torch.Tensor | np.ndarray, truth: torch.Tensor | np.ndarray) -> float:
    """Relative error ||s * estimate - truth|| / ||truth|| after the least-squares scalar s (the
    factorization's scale ambiguity: T @ L == (s T) @ (L / s))."""
    e = torch.as_tensor(np.asarray(estimate) if isinstance(estimate, np.ndarray) else estimate).double()
    t = torch.as_tensor(np.asarray(truth) if isinstance(truth, np.ndarray) else truth).double()
    if e.shape != t.shape:
        raise ValueError(f"estimate {tuple(e.shape)} and truth {tuple(t.shape)} differ in shape")
    s = (e * t).sum() / (e * e).sum().clamp_min(1e-300)
    return float((s * e - t).norm() / t.norm().clamp_min(1e-300))


@dataclass
class FactorizationResult:
    """T (h x q), L (q x w), the total loss per iteration and the final relative misfit
    ||T @ L - Y||_F / ||Y||_F."""

    T: torch.Tensor
    L: torch.Tensor
    losses: list[float] = field(default_factory=list)
    misfit: float = float("nan")
    interrupted: bool = False

    @property
    def product(self) -> torch.Tensor:
        return self.T @ self.L


class DeepMatrixFactorization:
    """Factor a nonnegative matrix Y (h x w) into T (h x q) @ L (q x w) with two deep generators.

    Defaults follow CompMirror's demo (Adam lr 1e-4, weight decay 1e-4, loss 1e-4 * L1 + L1 of the
    gradient differences, latent dropout 0.5); it settles after 10k-20k iterations on a GPU.
    """

    def __init__(
        self,
        upsampling: Genotype | UpsamplingCell | str = "nasdip-denoise",
        iterations: int = 20000,
        lr: float = 1e-4,
        weight_decay: float = 1e-4,
        widths: Sequence[int] = DEFAULT_WIDTHS,
        pointwise_weight: float = 1e-4,
        gradient_weight: float = 1.0,
        latent_dropout: float = 0.5,
        row_sum_aux: bool = True,
        seed: int = 0,
        device: str | torch.device = "auto",
        progress: bool = True,
    ) -> None:
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
            raise ValueError(f"iterations={iterations!r} must be a positive integer")
        if not lr > 0:
            raise ValueError(f"lr={lr!r} must be > 0")
        self.upsampling, self.iterations, self.lr, self.weight_decay = upsampling, iterations, lr, weight_decay
        self.widths, self.latent_dropout, self.row_sum_aux = tuple(widths), latent_dropout, row_sum_aux
        self.pointwise_weight, self.gradient_weight = pointwise_weight, gradient_weight
        self.seed, self.progress, self.device = seed, progress, resolve_device(device)

    def loss(self, product: torch.Tensor, observation: torch.Tensor) -> torch.Tensor:
        """CompMirror's objective: small pointwise L1 plus L1 of the row and column gradient differences."""
        d = product - observation
        loss = self.pointwise_weight * d.abs().mean()
        if self.gradient_weight:
            loss = loss + self.gradient_weight * (
                (d[:, 1:] - d[:, :-1]).abs().mean() + (d[1:, :] - d[:-1, :]).abs().mean()
            )
        return loss

    def factorize(
        self,
        observation: torch.Tensor | np.ndarray,
        rank: int,
        callback: Callable[[int, float], None] | None = None,
    ) -> FactorizationResult:
        """Recover T (h x rank) and L (rank x w) from Y = T @ L (h x w, nonnegative). Ctrl-C returns the
        current factors."""
        y = torch.as_tensor(np.asarray(observation) if isinstance(observation, np.ndarray) else observation)
        if y.dim() != 2 or min(y.shape) < 4:
            raise ValueError(f"observation must be a 2-D matrix at least 4 x 4, got shape {tuple(y.shape)}")
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            raise ValueError(f"rank={rank!r} must be a positive integer (the inner size q of T @ L)")
        y = y.float().to(self.device)
        if not torch.isfinite(y).all():
            raise ValueError("observation contains NaN or Inf")
        h, w = y.shape
        torch.manual_seed(self.seed)
        size = lambda n: -(-n // 32)  # noqa: E731 - latent cells so that 32x covers n
        aux = None
        if self.row_sum_aux:  # CompMirror: standardised row sums of Y, broadcast over T's columns
            s = y.sum(dim=1, keepdim=True)
            s = (s - s.mean()) / s.std().clamp_min(1e-12) if h > 1 else s * 0
            aux = s.expand(h, rank).reshape(1, 1, h, rank)
            aux = F.pad(aux, self._crop_pad(h, rank), mode="replicate")
        t_net = FactorGenerator((size(h), size(rank)), self.upsampling, self.widths, aux, self.latent_dropout)
        l_net = FactorGenerator((size(rank), size(w)), self.upsampling, self.widths, None, self.latent_dropout)
        t_net, l_net = t_net.to(self.device), l_net.to(self.device)
        opt = torch.optim.Adam(
            list(t_net.parameters()) + list(l_net.parameters()), lr=self.lr, weight_decay=self.weight_decay
        )
        losses: list[float] = []
        interrupted = False
        bar = progress_bar(self.iterations, self.progress, "factorize")
        try:
            for it in range(self.iterations):
                T = _center_crop(t_net(), h, rank)
                L = _center_crop(l_net(), rank, w)
                loss = self.loss(T @ L, y)
                optimisation_step(it, loss, opt, losses, bar, callback)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
        t_net.eval(), l_net.eval()
        with torch.no_grad():
            T = _center_crop(t_net(), h, rank)
            L = _center_crop(l_net(), rank, w)
            misfit = float((T @ L - y).norm() / y.norm().clamp_min(1e-12))
        return FactorizationResult(T=T.cpu(), L=L.cpu(), losses=losses, misfit=misfit, interrupted=interrupted)

    @staticmethod
    def _crop_pad(h: int, w: int) -> tuple[int, int, int, int]:
        """Padding that grows an h x w map to the generator's 32-multiple size, matching _center_crop."""
        H, W = -(-h // 32) * 32, -(-w // 32) * 32
        top, left = (H - h) // 2, (W - w) // 2
        return (left, W - w - left, top, H - h - top)
