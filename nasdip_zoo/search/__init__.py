"""The NAS-DIP search (optional extra ``[search]``; Ray executor in ``[ray]``).

An RL controller (AutoGAN-style LSTM, REINFORCE) or a baseline (random search, regularised
evolution) proposes genotypes of a :class:`~nasdip_zoo.space.SearchSpace`; an evaluator runs
DIP on held-out images and returns the reward (mean PSNR at the estimated t*); the runner logs
every candidate, checkpoints, resumes and exports the best as genotype cards.
"""

from __future__ import annotations

from .baselines import RandomSearch, RegularizedEvolution, make_searcher
from .controller import Controller, ControllerSearch
from .evaluate import CandidateResult, DIPEvaluator, TaskProtocol, load_training_images
from .executors import LocalExecutor, RayExecutor, make_executor
from .runner import SearchRunner, export_cards, read_log

__all__ = [
    "CandidateResult",
    "Controller",
    "ControllerSearch",
    "DIPEvaluator",
    "LocalExecutor",
    "RandomSearch",
    "RayExecutor",
    "RegularizedEvolution",
    "SearchRunner",
    "TaskProtocol",
    "export_cards",
    "load_training_images",
    "make_executor",
    "make_searcher",
    "read_log",
]
