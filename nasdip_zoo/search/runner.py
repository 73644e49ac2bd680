"""The search loop: ask the searcher, evaluate (any executor), log every candidate, checkpoint, resume, export.

Out folder layout: ``search.json`` (the configuration; a resume must match it), ``candidates.jsonl``
(one JSON line per candidate), ``checkpoint.safetensors`` (+ ``checkpoint.json`` for people:
searcher/controller, optimiser and RNG states after each batch) and ``cards/`` (exported top-k).
A killed search restarted with ``resume=True`` rolls back to the last checkpoint, reuses the log
lines of candidates evaluated after it (so nothing runs twice) and ends with the same log as an
uninterrupted run (apart from ``seconds`` and ``worker``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ..genotype import Genotype, write_json_atomic
from ..imageio import atomic_write
from ..space import SearchSpace
from .evaluate import CandidateResult
from .executors import LocalExecutor

__all__ = ["SearchRunner", "read_log", "export_cards", "LOG_NAME", "CHECKPOINT_NAME", "CONFIG_NAME",
           "CHECKPOINT_FORMAT", "VOLATILE_FIELDS"]

LOG_NAME = "candidates.jsonl"
CHECKPOINT_NAME = "checkpoint.safetensors"
CONFIG_NAME = "search.json"
CHECKPOINT_FORMAT = "nasdip-search-checkpoint/1"
VOLATILE_FIELDS = ("seconds", "worker")
"""Log fields that legitimately differ between runs of the same seeded search."""


def genotype_key(genotype: Genotype) -> str:
    """The cache key of a genotype: its canonical JSON."""
    return json.dumps(genotype.to_dict(), sort_keys=True)


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The candidates of a JSONL log; a torn last line (a kill mid-write) is ignored."""
    p = Path(path)
    if not p.is_file():
        return []
    entries = []
    lines = p.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{p}: line {i + 1} is not JSON; the log is damaged (move it away to start over)") from None
    return entries


class SearchRunner:
    """Run ``budget`` candidates of ``searcher`` (ask/tell) through ``evaluator`` on ``executor``.

    ``batch_size`` candidates are asked, evaluated (in parallel on Ray) and told at a time.
    ``halving_keep`` (e.g. 0.5) abandons a candidate at image rung n when its best mean PSNR is
    below the (1 - keep) quantile of the earlier batches' rung-n scores (once ``halving_min`` exist);
    None disables it. ``callback(entry)`` runs after each logged candidate.
    """

    def __init__(
        self,
        space: SearchSpace,
        searcher: Any,
        evaluator: Callable[..., CandidateResult],
        out_dir: str | os.PathLike[str],
        *,
        budget: int,
        batch_size: int = 1,
        seed: int = 0,
        executor: Any = None,
        halving_keep: float | None = None,
        halving_min: int = 4,
        config: Mapping[str, Any] | None = None,
        callback: Callable[[dict[str, Any]], Any] | None = None,
        progress: bool = True,
    ) -> None:
        if not isinstance(budget, int) or budget < 1:
            raise ValueError(f"budget={budget!r} must be a positive number of candidates")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        if halving_keep is not None and not 0 < halving_keep <= 1:
            raise ValueError(f"halving_keep={halving_keep!r} must be a fraction in (0, 1] or None")
        self.space = space
        self.searcher = searcher
        self.evaluator = evaluator
        self.out = Path(out_dir)
        self.budget = budget
        self.batch_size = batch_size
        self.seed = seed
        self.executor = executor or LocalExecutor()
        self.halving_keep = None if halving_keep in (None, 1, 1.0) else halving_keep
        self.halving_min = halving_min
        self.config = dict(config or {})
        self.config.update(algorithm=searcher.name, budget=budget, batch_size=batch_size, seed=seed,
                           halving_keep=self.halving_keep, connections=space.connection_form,
                           backbone=space.backbone.to_dict())
        self.callback = callback
        self.progress = progress
        self.entries: list[dict[str, Any]] = []

    @property
    def log_path(self) -> Path:
        return self.out / LOG_NAME

    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT_NAME

    # ------------------------------------------------------------------ state on disk
    def _check_config(self, resume: bool) -> None:
        cfg_path = self.out / CONFIG_NAME
        has_run = self.log_path.exists() or self.checkpoint_path.exists()
        if not resume:
            if has_run:
                raise ValueError(
                    f"{self.out} already holds a search; pass --resume (resume=True) to continue it or choose another --out"
                )
        elif cfg_path.is_file():
            saved = json.loads(cfg_path.read_text(encoding="utf-8"))
            mine = json.loads(json.dumps(self.config))
            diff = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k) and k != "budget")
            if diff:
                detail = ", ".join(f"{k}: {saved.get(k)!r} -> {mine.get(k)!r}" for k in diff)
                raise ValueError(f"cannot resume {self.out}: the settings differ ({detail}); rerun the same command")
        write_json_atomic(cfg_path, self.config)

    def _save_checkpoint(self, done: int) -> None:
        from safetensors.torch import save_file

        tensors, meta = self.searcher.state()
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        tensors["done"] = torch.tensor([done])
        info = {"format": CHECKPOINT_FORMAT, "done": done, "searcher": meta, "algorithm": self.searcher.name}
        text = json.dumps(info)
        # the metadata inside the safetensors file is authoritative; the JSON sidecar is for people
        atomic_write(self.checkpoint_path, lambda tmp: save_file(tensors, tmp, metadata={"nasdip": text}))
        write_json_atomic(self.checkpoint_path.with_suffix(".json"), info)

    def _load_checkpoint(self) -> int:
        from safetensors import safe_open

        try:
            with safe_open(str(self.checkpoint_path), framework="pt") as f:
                info = json.loads((f.metadata() or {}).get("nasdip", "{}"))
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # noqa: BLE001 - an unreadable file is a bad checkpoint
            raise ValueError(f"cannot read {self.checkpoint_path}: {e}; delete it to restart the search") from None
        if info.get("format") != CHECKPOINT_FORMAT or info.get("algorithm") != self.searcher.name:
            raise ValueError(f"{self.checkpoint_path} is not a checkpoint of this {self.searcher.name} search")
        self.searcher.load_state(tensors, info["searcher"])
        return int(info["done"])

    def _rewrite_log(self, entries: Sequence[Mapping[str, Any]]) -> None:
        text = "".join(json.dumps(e) + "\n" for e in entries)
        atomic_write(self.log_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    def _append(self, entry: Mapping[str, Any]) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    # ------------------------------------------------------------------ halving
    def thresholds(self, entries: Sequence[Mapping[str, Any]]) -> dict[int, float]:
        """Per image rung n: the (1 - keep) quantile of the rung-n scores of evaluated candidates so far."""
        if self.halving_keep is None:
            return {}
        by_rung: dict[int, list[float]] = {}
        for e in entries:
            if e.get("cached"):
                continue
            for n, s in e.get("rung_scores", {}).items():
                by_rung.setdefault(int(n), []).append(float(s))
        out = {}
        for n, vals in by_rung.items():
            if len(vals) >= self.halving_min:
                vals = sorted(vals)
                out[n] = vals[min(len(vals) - 1, int(math.floor((1 - self.halving_keep) * len(vals))))]
        return out

    # ------------------------------------------------------------------ the loop
    def run(self, resume: bool = False) -> list[dict[str, Any]]:
        """Run (or continue, with ``resume``) until ``budget`` candidates are logged; returns the log."""
        self.out.mkdir(parents=True, exist_ok=True)
        self._check_config(resume)
        old = read_log(self.log_path) if resume else []
        done = self._load_checkpoint() if resume and self.checkpoint_path.exists() else 0
        if done > len(old):
            raise ValueError(f"{self.checkpoint_path} is ahead of {self.log_path}; the log was truncated, delete both to restart")
        entries = old[:done]
        recovered = {e["index"]: e for e in old[done:]}
        self._rewrite_log(entries)
        cache = {}
        for e in entries:
            cache.setdefault(genotype_key(Genotype.from_dict(e["genotype"])), e)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.budget, initial=done, desc=f"search {self.searcher.name}", unit="cand")
            if entries:
                bar.set_postfix(best=f"{max(e['reward'] for e in entries):.2f}")
        try:
            while done < self.budget:
                n = min(self.batch_size, self.budget - done)
                stage = self.searcher.stage
                batch_tokens = self.searcher.ask(n)
                thresholds = self.thresholds(entries)
                plan: list[tuple[str, Any, Genotype]] = []
                calls = []
                batch_keys = set()
                for j, toks in enumerate(batch_tokens):
                    g = self.space.decode(toks)
                    key = genotype_key(g)
                    rec = recovered.get(done + j)
                    if rec is not None and rec["tokens"] == list(toks):
                        plan.append(("recovered", rec, g))
                    elif key in cache or key in batch_keys:
                        plan.append(("cached", key, g))
                    else:
                        kwargs = {"thresholds": thresholds} if self.halving_keep is not None else {}
                        calls.append(((g, self.seed), kwargs))
                        plan.append(("eval", key, g))
                        batch_keys.add(key)
                results = iter(self.executor.map(self.evaluator, calls))
                rewards = []
                for j, (kind, ref, g) in enumerate(plan):
                    if kind == "recovered":
                        entry = dict(ref)
                    else:
                        if kind == "eval":
                            res = next(results)
                            fields, cached = res.to_dict(), False
                        else:
                            fields, cached = {k: v for k, v in cache[ref].items() if k in CandidateResult.__dataclass_fields__}, True
                            fields.update(seconds=0.0, worker="cache")
                        entry = {"index": done + j, "batch": done // self.batch_size, "algorithm": self.searcher.name,
                                 "stage": stage, "tokens": list(batch_tokens[j]), "genotype": g.to_dict(),
                                 "describe": g.describe(), "cached": cached, **fields}
                    cache.setdefault(genotype_key(g), entry)
                    self._append(entry)
                    entries.append(entry)
                    rewards.append(entry["reward"])
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(best=f"{max(e['reward'] for e in entries):.2f}")
                    if self.callback is not None:
                        self.callback(entry)
                self.searcher.tell(batch_tokens, rewards)
                done += n
                self._save_checkpoint(done)
        finally:
            if bar is not None:
                bar.close()
        self.entries = entries
        return entries


def ranked(entries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Distinct, fully evaluated candidates by reward (best first; ties: earlier first)."""
    seen, out = set(), []
    for e in sorted(entries, key=lambda e: (-e["reward"], e["index"])):
        key = json.dumps(e["genotype"], sort_keys=True)
        if e.get("abandoned") or key in seen:
            continue
        seen.add(key)
        out.append(e)
    return out


def export_cards(
    entries: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike[str],
    *,
    k: int = 3,
    task: str = "denoise",
    settings: Mapping[str, Any],
    prefix: str | None = None,
    provenance: Mapping[str, Any] | None = None,
    description: str = "",
    images_note: str = "",
    iterations: int | None = None,
) -> list[Path]:
    """Write the top-``k`` candidates as genotype cards (``get_genotype(path)``-loadable, ready for ``nasdip hub push``).

    ``settings``: the DIP settings the search used (lr, reg_noise_std, ema, input_channels,
    input_scale); each card gets its own estimated t* and a note on how it was estimated
    (``images_note``, e.g. "32x32 crops at 16 channels"; a t* equal to ``iterations`` is flagged).
    """
    from ..zoo import TASKS, Card, DIPSettings

    out = Path(out_dir)
    prefix = prefix or f"search-{task}"
    paths = []
    for rank, e in enumerate(ranked(entries)[:k], start=1):
        g = Genotype.from_dict(e["genotype"])
        name = f"{prefix}-{rank}"
        prov = {"search": {**dict(provenance or {}), "rank": rank, "candidate_index": e["index"],
                           "algorithm": e["algorithm"], "reward_psnr": e["reward"], "t_star": e["t_star"],
                           "images": e["images"], "per_image_psnr": e["per_image"]}}
        if task not in TASKS:  # a user operator: no card task to attach settings to; a bare genotype
            paths.append(g.save(out / f"{name}.json"))
            continue
        note = f"search estimate: argmax of the mean PSNR over {e['images']} training images"
        note += f" ({images_note})" if images_note else ""
        note += "; valid for that image size and width, re-estimate for others"
        if iterations is not None and e["t_star"] >= iterations:
            note += f"; t* hit the search's {iterations}-iteration budget (PSNR still rising): search with more iterations"
        dip = DIPSettings(
            lr=float(settings["lr"]), reg_noise_std=float(settings["reg_noise_std"]), t_star=int(e["t_star"]),
            released_iterations=None, ema=settings.get("ema"), input_channels=int(settings.get("input_channels", 32)),
            input_scale=float(settings.get("input_scale", 0.1)),
            t_star_source=note,
        )
        card = Card(name=name, task=task, genotype=g, settings={task: dip},
                    description=description or f"Searched for {task} by nasdip search ({e['algorithm']}), rank {rank}: {g.describe()}",
                    provenance=prov, benchmarks={})
        paths.append(card.save(out / f"{name}.json"))
    return paths
