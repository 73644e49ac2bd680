"""Candidate evaluation: DIP on held-out images with known ground truth, reward = mean PSNR at t*.

t* is the iteration that maximises the mean PSNR curve over the training images (the paper's way
to pick the stopping point without the test image's ground truth); the reward is that maximum.
Cost controls: crop size and number of images (:func:`load_training_images`), iterations per
candidate, and successive-halving style abandonment at image "rungs" (thresholds from the runner).
The DIP loop itself is :class:`nasdip_zoo.restore.DIPRestorer`; nothing here reimplements it.
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ..genotype import Genotype

__all__ = [
    "CandidateResult",
    "Evaluator",
    "TaskProtocol",
    "DIPEvaluator",
    "load_training_images",
    "estimate_t_star",
    "IMAGE_SUFFIXES",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class CandidateResult:
    """What evaluating one genotype gives: reward (mean PSNR at t*), t*, the mean PSNR curve and costs."""

    reward: float
    t_star: int
    curve: list[float]
    """Mean PSNR over the evaluated images at iterations curve_every, 2*curve_every, ... (1-based)."""
    per_image: list[float]
    """PSNR of each evaluated image at t*."""
    images: int
    abandoned: bool = False
    rung_scores: dict[str, float] = field(default_factory=dict)
    """Best mean-curve PSNR after the first n images, n = 1 .. images-1 (string keys): the halving rungs."""
    curve_every: int = 1
    seconds: float = 0.0
    worker: str = ""
    error: str | None = None
    """Why DIP failed on this candidate (it diverged): reward 0 dB, marked abandoned, never exported."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CandidateResult":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


Evaluator = Callable[[Genotype, int], CandidateResult]
"""The evaluator interface: ``evaluator(genotype, seed) -> CandidateResult`` (must be deterministic)."""


def estimate_t_star(curves: Sequence[Sequence[float]]) -> tuple[int, float, list[float]]:
    """(t*, mean PSNR at t*, mean curve) from per-image PSNR curves; NaNs (rolled-back steps) carry the last value."""
    if not curves:
        raise ValueError("estimate_t_star needs at least one PSNR curve")
    n = min(len(c) for c in curves)
    if n == 0:
        raise ValueError("empty PSNR curve: evaluate at least one iteration")
    filled = []
    for c in curves:
        out, last = [], -math.inf
        for v in c[:n]:
            last = v if v is not None and math.isfinite(v) else last
            out.append(last)
        filled.append(out)
    mean = [sum(f[i] for f in filled) / len(filled) for i in range(n)]
    best = max(range(n), key=lambda i: (mean[i], -i))  # earliest iteration of the maximum
    return best + 1, mean[best], mean


@dataclass(frozen=True)
class TaskProtocol:
    """How a clean image is degraded for a task: 'denoise' (Gaussian sigma on [0,1]), 'sr' (DIP's Lanczos LR, factor), 'inpaint' (Bernoulli mask, keep)."""

    task: str = "denoise"
    sigma: float = 25 / 255
    factor: int = 4
    keep: float = 0.5

    def __post_init__(self) -> None:
        if self.task not in ("denoise", "sr", "inpaint"):
            raise ValueError(f"task={self.task!r} is not allowed; choose 'denoise', 'sr' or 'inpaint' (or pass degrade=)")
        if self.task == "sr" and self.factor not in (2, 4, 8):
            raise ValueError(f"sr factor={self.factor!r} is not allowed; choose 2, 4 or 8")

    def degrade(self, gt: torch.Tensor, seed: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """(observation, keyword arguments of DIPRestorer.restore) for one ground-truth image."""
        from ..operators import add_gaussian_noise, bernoulli_mask, lanczos_lr

        if self.task == "denoise":
            return add_gaussian_noise(gt, self.sigma, seed=seed), {"operator": "denoise"}
        if self.task == "sr":
            return lanczos_lr(gt, self.factor, multiple=self.factor), {"operator": "sr", "scale": self.factor}
        mask = torch.from_numpy(bernoulli_mask(gt.shape[-2:], self.keep, seed=seed))
        return gt * mask, {"operator": "inpaint", "mask": mask}


def load_training_images(
    train_dir: str | os.PathLike[str], crop: int | None = 32, images: int | None = 4
) -> list[torch.Tensor]:
    """The first ``images`` images of ``train_dir`` (sorted by name), centre-cropped to ``crop`` x ``crop``.

    ``crop=None`` keeps the image, cropped to a multiple of 32 (DIP's protocol); tensors are 1xCxHxW in [0, 1].
    """
    from ..imageio import load_image, to_tensor
    from ..operators import crop_to_multiple

    d = Path(train_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"training directory {str(d)!r} does not exist; pass --train-dir with held-out images")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {str(d)!r}")
    if images is not None:
        if images < 1:
            raise ValueError(f"images={images} must be >= 1")
        if images > len(files):
            raise ValueError(f"images={images} but {str(d)!r} holds only {len(files)}; lower --images")
        files = files[:images]
    out = []
    for p in files:
        t, _ = to_tensor(load_image(p))
        if t.shape[1] in (2, 4):  # drop alpha: the search scores colour only
            t = t[:, :-1]
        if crop is None:
            t = crop_to_multiple(t, 32)
        else:
            h, w = t.shape[-2:]
            if crop < 1 or crop > min(h, w):
                raise ValueError(f"crop={crop} does not fit {p.name} ({h}x{w}); use a crop <= {min(h, w)}")
            top, left = (h - crop) // 2, (w - crop) // 2
            t = t[..., top : top + crop, left : left + crop]
        out.append(t.contiguous())
    return out


class DIPEvaluator:
    """Run DIP (``DIPRestorer``) with a genotype on every training image; reward = mean PSNR at t*.

    ``protocol`` degrades each ground truth (image i with noise/mask seed ``degrade_seed + i``, the
    same for every candidate); ``degrade(gt, seed) -> (observation, restore_kwargs)`` replaces it
    for a user operator. DIP settings default to the bare-genotype (dip-skip) settings of the task;
    ``iterations`` is the per-candidate budget. Called as ``evaluator(genotype, seed,
    thresholds={n: psnr})``: after n images a candidate whose best mean PSNR is below the
    threshold is abandoned (successive halving; the reward then uses the images done).
    """

    def __init__(
        self,
        images: Sequence[torch.Tensor],
        protocol: TaskProtocol | None = None,
        *,
        iterations: int = 300,
        lr: float | None = None,
        reg_noise_std: float | None = None,
        ema: float | bool | None = None,
        degrade: Callable[[torch.Tensor, int], tuple[Any, dict[str, Any]]] | None = None,
        degrade_seed: int = 0,
        curve_every: int = 1,
        device: str = "cpu",
    ) -> None:
        if not images:
            raise ValueError("DIPEvaluator needs at least one training image")
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations={iterations!r} must be a positive integer")
        if curve_every < 1:
            raise ValueError(f"curve_every={curve_every!r} must be >= 1")
        self.images = [img.detach().cpu() for img in images]
        self.protocol = protocol or TaskProtocol()
        self.degrade = degrade or self.protocol.degrade
        self.iterations = iterations
        self.overrides = {"lr": lr, "reg_noise_std": reg_noise_std, "ema": ema}
        self.curve_every = curve_every
        self.device = device
        self.observations = [self.degrade(img, degrade_seed + i) for i, img in enumerate(self.images)]

    def __call__(self, genotype: Genotype, seed: int = 0, thresholds: Mapping[int, float] | None = None) -> CandidateResult:
        from ..restore import DIPRestorer, RestorationDiverged

        t0 = time.perf_counter()
        restorer = DIPRestorer(genotype, iterations=self.iterations, seed=seed, device=self.device, progress=False,
                               **self.overrides)
        curves: list[list[float]] = []
        rung_scores: dict[str, float] = {}
        abandoned = False
        thresholds = dict(thresholds or {})
        for gt, (obs, kwargs) in zip(self.images, self.observations):
            try:
                res = restorer.restore(obs, ground_truth=gt, **kwargs)
            except RestorationDiverged as e:  # a bad architecture must not stop the search
                return CandidateResult(reward=0.0, t_star=1, curve=[], per_image=[], images=len(curves) + 1,
                                       abandoned=True, rung_scores=rung_scores, curve_every=self.curve_every,
                                       seconds=time.perf_counter() - t0,
                                       worker=f"{socket.gethostname()}:{os.getpid()}", error=str(e))
            curves.append(res.ema_psnrs if res.ema_psnrs is not None else res.psnrs)
            n = len(curves)
            if n < len(self.images):
                score = estimate_t_star(curves)[1]
                rung_scores[str(n)] = score
                if n in thresholds and score < thresholds[n]:
                    abandoned = True
                    break
        t_star, reward, mean = estimate_t_star(curves)
        per_image = [_at(c, t_star) for c in curves]
        return CandidateResult(
            reward=reward,
            t_star=t_star,
            curve=[mean[i] for i in range(self.curve_every - 1, len(mean), self.curve_every)],
            per_image=per_image,
            images=len(curves),
            abandoned=abandoned,
            rung_scores=rung_scores,
            curve_every=self.curve_every,
            seconds=time.perf_counter() - t0,
            worker=f"{socket.gethostname()}:{os.getpid()}",
        )


def _at(curve: Sequence[float], t: int) -> float:
    v = curve[t - 1]
    return float(v) if v is not None and math.isfinite(v) else float("nan")
