"""Baselines in the controller's ask/tell harness: random search and regularised evolution.

Regularised (aging) evolution is Real et al., AAAI 2019: keep a population of the most recent
``population`` candidates; a child is the best of ``sample_size`` random members with ONE token
mutated to another value; the oldest member dies. Both draw only from their own seeded RNG.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any, Sequence

import torch

from ..space import SearchSpace

__all__ = ["RandomSearch", "RegularizedEvolution", "make_searcher", "ALGORITHMS"]

ALGORITHMS = ("controller", "random", "evolution")


def _rng_to_json(rng: random.Random) -> list[Any]:
    v, state, gauss = rng.getstate()
    return [v, list(state), gauss]


def _rng_from_json(data: list[Any]) -> random.Random:
    rng = random.Random()
    rng.setstate((data[0], tuple(data[1]), data[2]))
    return rng


class RandomSearch:
    """Uniform samples of the space (valid cells only), independent of the rewards."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self.rng = random.Random(seed)
        self.told = 0

    @property
    def stage(self) -> str:
        return "joint"

    def ask(self, n: int) -> list[list[int]]:
        return [self.space.sample_tokens(self.rng) for _ in range(n)]

    def tell(self, tokens: Sequence[Sequence[int]], rewards: Sequence[float]) -> None:
        self.told += len(tokens)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {}, {"rng": _rng_to_json(self.rng), "told": self.told}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.rng = _rng_from_json(meta["rng"])
        self.told = int(meta["told"])


class RegularizedEvolution(RandomSearch):
    """Aging evolution: tournament of ``sample_size``, mutate one token, the oldest member dies."""

    name = "evolution"

    def __init__(self, space: SearchSpace, seed: int = 0, population: int = 20, sample_size: int = 5) -> None:
        super().__init__(space, seed)
        if population < 2 or not 1 <= sample_size <= population:
            raise ValueError(
                f"evolution needs population >= 2 and 1 <= sample_size <= population, got {population}, {sample_size}"
            )
        self.population_size = population
        self.sample_size = sample_size
        self.population: deque[tuple[list[int], float]] = deque()

    def mutate(self, tokens: Sequence[int]) -> list[int]:
        """Change one randomly chosen token to another value, redrawing until the cell is valid."""
        for _ in range(1000):
            child = list(tokens)
            i = self.rng.randrange(len(child))
            choices = [v for v in range(self.space.decisions[i].size) if v != child[i]]
            child[i] = self.rng.choice(choices)
            if self.space.is_valid(child):
                return child
        raise RuntimeError("no valid one-token mutation found")  # pragma: no cover - the space always has some

    def ask(self, n: int) -> list[list[int]]:
        out = []
        for _ in range(n):
            if len(self.population) < self.population_size:
                out.append(self.space.sample_tokens(self.rng))
            else:
                members = self.rng.sample(list(self.population), self.sample_size)
                parent = max(members, key=lambda m: m[1])[0]
                out.append(self.mutate(parent))
        return out

    def tell(self, tokens: Sequence[Sequence[int]], rewards: Sequence[float]) -> None:
        for t, r in zip(tokens, rewards):
            self.population.append((list(t), float(r)))
            if len(self.population) > self.population_size:
                self.population.popleft()
        self.told += len(tokens)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = super().state()
        meta["population"] = [[t, r] for t, r in self.population]
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        super().load_state(tensors, meta)
        self.population = deque((list(t), float(r)) for t, r in meta["population"])


def make_searcher(algorithm: str, space: SearchSpace, seed: int = 0, **options: Any):
    """``controller`` (options: mode, cell_budget, hidden, lr), ``random``, or ``evolution`` (population, sample_size)."""
    if algorithm == "controller":
        from .controller import ControllerSearch

        keys = {"mode", "cell_budget", "hidden", "lr", "entropy_weight", "baseline_decay"}
        return ControllerSearch(space, seed, **{k: v for k, v in options.items() if k in keys and v is not None})
    if algorithm == "random":
        return RandomSearch(space, seed)
    if algorithm == "evolution":
        keys = {"population", "sample_size"}
        return RegularizedEvolution(space, seed, **{k: v for k, v in options.items() if k in keys and v is not None})
    raise ValueError(f"algorithm={algorithm!r} is not known; choose one of {list(ALGORITHMS)}")
