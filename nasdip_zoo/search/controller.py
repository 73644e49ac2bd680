"""The AutoGAN-style RL controller of NAS-DIP: an LSTMCell that emits one token per decision.

Each decision of the :class:`~nasdip_zoo.space.SearchSpace` has its own embedding (the input of
the next step) and its own softmax head. Invalid cells (e.g. pixel_shuffle + identity) are never
returned: at each cell decision the choices that cannot complete a valid cell given the tokens
already emitted are MASKED (logit -inf), so sampling stays one pass and deterministic under a seed.
Trained by REINFORCE with a moving-average baseline and an entropy bonus (paper / AutoGAN values).
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import torch
import torch.nn as nn

from ..state import flatten_optimizer, load_flat_optimizer
from ..space import SearchSpace

__all__ = ["Controller", "ControllerSearch", "valid_cell_prefixes"]


def valid_cell_prefixes(space: SearchSpace) -> dict[tuple[int, ...], tuple[int, ...]]:
    """For every prefix of cell tokens: the next choices that still allow a valid cell (cached per space)."""
    key = (space.connection_form, space.backbone, space.sum_chunks)
    if key not in _PREFIX_CACHE:
        _PREFIX_CACHE[key] = _valid_cell_prefixes(space)
    return _PREFIX_CACHE[key]


_PREFIX_CACHE: dict[Any, dict[tuple[int, ...], tuple[int, ...]]] = {}


def _valid_cell_prefixes(space: SearchSpace) -> dict[tuple[int, ...], tuple[int, ...]]:
    k = space.num_cell_decisions
    sizes = [d.size for d in space.decisions[:k]]
    rest = [0] * (len(space.decisions) - k)
    allowed: dict[tuple[int, ...], set[int]] = {}
    for tokens in itertools.product(*(range(s) for s in sizes)):
        if not space.is_valid(list(tokens) + rest):
            continue
        for i in range(k):
            allowed.setdefault(tokens[:i], set()).add(tokens[i])
    return {p: tuple(sorted(v)) for p, v in allowed.items()}


class Controller(nn.Module):
    """LSTMCell(hidden) over the decisions; embedding and softmax head per decision."""

    def __init__(self, space: SearchSpace, hidden: int = 100) -> None:
        super().__init__()
        self.space = space
        self.hidden = hidden
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.embeddings = nn.ModuleList(nn.Embedding(d.size, hidden) for d in space.decisions)
        self.heads = nn.ModuleList(nn.Linear(hidden, d.size) for d in space.decisions)
        self._prefixes = valid_cell_prefixes(space)

    def sample(
        self, generator: torch.Generator, fixed: dict[int, int] | None = None
    ) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """One token sequence, its summed log-probability and entropy (fixed positions excluded)."""
        fixed = fixed or {}
        k = self.space.num_cell_decisions
        x = self.start
        h = c = torch.zeros(1, self.hidden)
        tokens: list[int] = []
        logp = torch.zeros(())
        entropy = torch.zeros(())
        for i, decision in enumerate(self.space.decisions):
            h, c = self.lstm(x, (h, c))
            if i in fixed:
                t = int(fixed[i])
            else:
                logits = self.heads[i](h)[0]
                if i < k:
                    ok = self._prefixes.get(tuple(tokens))
                    if not ok:
                        raise ValueError(f"fixed cell tokens {tokens} cannot be completed to a valid cell")
                    mask = torch.full((decision.size,), float("-inf"))
                    mask[list(ok)] = 0.0
                    logits = logits + mask
                log_probs = torch.log_softmax(logits, dim=-1)
                t = int(torch.multinomial(log_probs.exp().detach(), 1, generator=generator))
                logp = logp + log_probs[t]
                p = log_probs.exp()
                entropy = entropy - (p * torch.where(p > 0, log_probs, torch.zeros_like(log_probs))).sum()
            tokens.append(t)
            x = self.embeddings[i](torch.tensor([t]))
        return tokens, logp, entropy


class ControllerSearch:
    """The controller as an ask/tell searcher: REINFORCE, baseline decay 0.9, entropy 1e-3, Adam(3.5e-4, (0, 0.9)).

    ``mode='joint'`` samples cell and connections together (the paper); ``mode='staged'`` searches
    the cell for the first ``cell_budget`` candidates with the connections fixed to the same-level
    skip, then the connections with the cell fixed to the best cell found in the first stage.
    """

    name = "controller"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        *,
        hidden: int = 100,
        lr: float = 3.5e-4,
        betas: tuple[float, float] = (0.0, 0.9),
        baseline_decay: float = 0.9,
        entropy_weight: float = 1e-3,
        mode: str = "joint",
        cell_budget: int | None = None,
    ) -> None:
        if mode not in ("joint", "staged"):
            raise ValueError(f"mode={mode!r} is not allowed; choose 'joint' or 'staged'")
        if mode == "staged" and (cell_budget is None or cell_budget < 1):
            raise ValueError("mode='staged' needs cell_budget >= 1 (candidates of the cell stage)")
        self.space = space
        self.mode = mode
        self.cell_budget = cell_budget
        self.baseline_decay = baseline_decay
        self.entropy_weight = entropy_weight
        self.seed = seed
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(seed)
            self.controller = Controller(space, hidden)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=lr, betas=betas)
        self.generator = torch.Generator().manual_seed(seed)
        self.baseline: float | None = None
        self.told = 0
        self.best_cell: list[int] | None = None
        self.best_cell_reward: float | None = None
        self._pending: list[tuple[list[int], torch.Tensor, torch.Tensor]] = []

    # ------------------------------------------------------------------ stages
    @property
    def stage(self) -> str:
        if self.mode == "joint":
            return "joint"
        return "cell" if self.told < self.cell_budget else "connections"

    def _fixed(self) -> dict[int, int]:
        k = self.space.num_cell_decisions
        if self.stage == "cell":
            return dict(enumerate(default_connection_tokens(self.space), start=k))
        if self.stage == "connections":
            return dict(enumerate(self.best_cell))
        return {}

    # ------------------------------------------------------------------ ask / tell
    def ask(self, n: int) -> list[list[int]]:
        fixed = self._fixed()
        self._pending = [self.controller.sample(self.generator, fixed) for _ in range(n)]
        return [list(t) for t, _, _ in self._pending]

    def tell(self, tokens: Sequence[Sequence[int]], rewards: Sequence[float]) -> None:
        """One REINFORCE step on the batch just asked (the log-probs are kept from ``ask``)."""
        if len(tokens) != len(self._pending) or any(list(t) != p[0] for t, p in zip(tokens, self._pending)):
            raise ValueError("tell() must receive exactly the candidates of the last ask(), in order")
        k = self.space.num_cell_decisions
        losses = []
        for (toks, logp, ent), r in zip(self._pending, rewards):
            r = float(r)
            if self.baseline is None:
                self.baseline = r
            adv = r - self.baseline
            losses.append(-adv * logp - self.entropy_weight * ent)
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * r
            if self.stage in ("cell", "joint") and (self.best_cell_reward is None or r > self.best_cell_reward):
                self.best_cell, self.best_cell_reward = list(toks[:k]), r
        self.optimizer.zero_grad(set_to_none=True)
        torch.stack(losses).mean().backward()
        self.optimizer.step()
        self.told += len(tokens)
        self._pending = []

    # ------------------------------------------------------------------ state
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {f"controller.{k}": v.detach().clone() for k, v in self.controller.state_dict().items()}
        tensors.update({f"adam.{k}": v for k, v in flatten_optimizer(self.optimizer).items()})
        tensors["rng"] = self.generator.get_state()
        meta = {"baseline": self.baseline, "told": self.told, "best_cell": self.best_cell,
                "best_cell_reward": self.best_cell_reward}
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.controller.load_state_dict({k[11:]: v for k, v in tensors.items() if k.startswith("controller.")})
        load_flat_optimizer(self.optimizer, {k[5:]: v for k, v in tensors.items() if k.startswith("adam.")})
        self.generator.set_state(tensors["rng"])
        self.baseline = meta["baseline"]
        self.told = int(meta["told"])
        self.best_cell = meta["best_cell"]
        self.best_cell_reward = meta["best_cell_reward"]


def default_connection_tokens(space: SearchSpace) -> list[int]:
    """The connection tokens of the same-level skip only (DIP's U-Net pattern), used in the cell stage."""
    from ..genotype import Connections, Genotype

    k = space.num_cell_decisions
    cell = space.decode(space.sample_tokens(0)).cell
    conns = Connections(offsets=(0,)) if space.connection_form == "shared" else Connections(
        matrix=tuple(tuple(int(r == c) for c in range(space.backbone.depth)) for r in range(space.backbone.depth)))
    return space.encode(Genotype(cell=cell, connections=conns, backbone=space.backbone))[k:]
