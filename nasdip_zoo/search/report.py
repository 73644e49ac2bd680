"""Reports of finished searches: reward over candidates per algorithm (plot) and a text summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from .runner import LOG_NAME, ranked, read_log

__all__ = ["collect_logs", "plot_rewards", "summary"]


def collect_logs(out_dir: str | os.PathLike[str]) -> dict[str, list[dict[str, Any]]]:
    """The logs of every algorithm folder under ``out_dir`` (``<out>/<algorithm>/candidates.jsonl``)."""
    logs = {}
    for p in sorted(Path(out_dir).glob(f"*/{LOG_NAME}")):
        entries = read_log(p)
        if entries:
            logs[p.parent.name] = entries
    return logs


def plot_rewards(logs: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike[str], title: str = "") -> Path:
    """Reward of each candidate (dots) and best so far (line) per algorithm, written atomically as PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'nasdip-zoo[search]'") from None
    from ..imageio import atomic_write

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for i, (name, entries) in enumerate(sorted(logs.items())):
        color = f"C{i}"
        x = [e["index"] + 1 for e in entries]
        y = [e["reward"] for e in entries]
        full = [not e.get("abandoned") for e in entries]
        ax.scatter([a for a, f in zip(x, full) if f], [b for b, f in zip(y, full) if f], s=14, color=color, alpha=0.6)
        ax.scatter([a for a, f in zip(x, full) if not f], [b for b, f in zip(y, full) if not f], s=14, color=color,
                   alpha=0.6, marker="x")
        best, run = [], float("-inf")
        for b, f in zip(y, full):
            run = max(run, b) if f else run
            best.append(run if run > float("-inf") else float("nan"))
        ax.plot(x, best, color=color, label=f"{name} (best so far)")
    ax.set_xlabel("candidate")
    ax.set_ylabel("reward: mean PSNR at estimated t* (dB)")
    ax.set_title(title or "search reward per candidate (x = abandoned early)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return out


def summary(logs: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """One line per algorithm: candidates, evaluated, abandoned, best reward, its t* and genotype; mean reward."""
    lines = []
    for name, entries in sorted(logs.items()):
        full = [e for e in entries if not e.get("abandoned")]
        top = ranked(entries)
        best = top[0] if top else None
        mean = sum(e["reward"] for e in full) / len(full) if full else float("nan")
        lines.append(
            f"{name}: {len(entries)} candidates ({sum(not e.get('cached') for e in entries)} evaluated, "
            f"{sum(bool(e.get('abandoned')) for e in entries)} abandoned), mean reward {mean:.2f} dB, "
            + (f"best {best['reward']:.2f} dB at t*={best['t_star']} (candidate {best['index']}): {best['describe']}" if best else "no full evaluation")
        )
    return "\n".join(lines)
