"""Benchmark reports: a Markdown table (per-image rows, means, seed spread, the paper's numbers) and a
PSNR-versus-iteration plot per protocol, both made from ``results.json``."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..imageio import atomic_write

__all__ = ["write_report", "markdown_table", "plot_curves", "summarize", "PAPER"]

# NASDIP_FACTS section 6 (paper Tables 1 and 2, full-size images). "*" = oracle stopping (ground truth used).
PAPER: dict[str, dict[str, str]] = {
    "sr_x2": {"nasdip-sr": "35.32 (Ours); 35.90 (Ours*, oracle)", "dip-skip": "33.19 (DIP*, oracle)", "bicubic": "33.66"},
    "sr_x4": {"nasdip-sr": "30.81 (Ours); 31.09 (Ours*, oracle)", "dip-skip": "29.89 (DIP*, oracle); published outputs 29.90",
              "nasdip-sr-cell-only": "DIP +0.54 (Table 2)", "nasdip-sr-connections-only": "DIP +0.32 (Table 2)",
              "bicubic": "28.44"},
    "sr_x8": {"nasdip-sr": "26.41 (Ours); 27.03 (Ours*, oracle)", "dip-skip": "25.88 (DIP*, oracle)", "bicubic": "24.37"},
    "denoise": {"nasdip-denoise": "31.42 (Ours)", "dip-skip": "30.43 (as cited); published outputs 31.29",
                "nasdip-denoise-cell-only": "DIP +0.65 (Table 2)", "nasdip-denoise-connections-only": "DIP +0.73 (Table 2)",
                "bm3d": "31.42 (published CBM3D outputs)"},
    "inpaint": {"nasdip-inpaint": "34.72 (Ours)", "dip-skip": "33.48; published outputs 33.44",
                "nasdip-inpaint-cell-only": "DIP +0.53 (Table 2)", "nasdip-inpaint-connections-only": "DIP +1.11 (Table 2)"},
}


def _load(folder: Path) -> dict[str, Any]:
    p = folder / "results.json"
    if not p.is_file():
        raise FileNotFoundError(f"no results.json in {folder}")
    return json.loads(p.read_text(encoding="utf-8"))


def _order(data: dict[str, Any]) -> tuple[list[str], list[str], list[int]]:
    recs = list(data["records"].values())
    methods = list(dict.fromkeys(r["method"] for r in sorted(recs, key=lambda r: r["kind"] != "dip")))
    images = list(dict.fromkeys(r["image"] for r in recs))
    seeds = sorted({r["seed"] for r in recs})
    return methods, images, seeds


def _f(v: float | None, nd: int = 2) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def summarize(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per method: mean PSNR at t*, spread over seeds, paired difference to dip-skip, oracle, SSIM, timings."""
    methods, images, seeds = _order(data)
    recs = data["records"]
    table: dict[str, dict[str, Any]] = {}
    for m in methods:
        rows = [r for r in recs.values() if r["method"] == m and r["psnr"] is not None]
        per_seed = defaultdict(list)
        for r in rows:
            per_seed[r["seed"]].append(r["psnr"])
        seed_means = [float(np.mean(v)) for v in per_seed.values()]
        s: dict[str, Any] = {
            "n": len(rows),
            "psnr": float(np.mean([r["psnr"] for r in rows])) if rows else None,
            "seed_std": float(np.std(seed_means, ddof=1)) if len(seed_means) > 1 else None,
            "seed_means": seed_means,
            "ssim": float(np.mean([r["ssim"] for r in rows if r.get("ssim") is not None])) if rows else None,
            "seconds": float(np.mean([r["seconds"] for r in rows])) if rows else None,
            "kind": rows[0]["kind"] if rows else None,
        }
        orc = [r for r in rows if r.get("oracle_psnr") is not None]
        if orc:
            s["oracle_psnr"] = float(np.mean([r["oracle_psnr"] for r in orc]))
            s["oracle_iteration"] = float(np.mean([r["oracle_iteration"] for r in orc]))
            s["seconds_per_iteration"] = float(np.mean([r["seconds_per_iteration"] for r in orc]))
            s["t_star"] = sorted({r["t_star"] for r in orc})
            s["device"] = sorted({r["device"] for r in orc})
        base = {(r["image"], r["seed"]): r["psnr"] for r in recs.values() if r["method"] == "dip-skip" and r["psnr"] is not None}
        pairs = [r["psnr"] - base[(r["image"], r["seed"])] for r in rows if (r["image"], r["seed"]) in base]
        if pairs and m != "dip-skip":
            s["vs_dip_skip"] = float(np.mean(pairs))
            s["vs_dip_skip_std"] = float(np.std(pairs, ddof=1)) if len(pairs) > 1 else None
            s["wins_vs_dip_skip"] = f"{sum(d > 0 for d in pairs)}/{len(pairs)}"
        table[m] = s
    return table


def markdown_table(data: dict[str, Any]) -> str:
    """The Markdown report of one protocol's results."""
    methods, images, seeds = _order(data)
    recs = data["records"]
    proto = data["protocol"]
    key = "sr_x{}".format(proto["scale"]) if proto["task"] == "sr" else proto["task"]
    summ = summarize(data)
    prog = data.get("progress", {})
    lines = [f"# {key}: {proto['metric']}", ""]
    preset = data.get("preset", {})
    lines.append(f"Preset `{preset.get('name')}`: {preset.get('description', '')}. Crop: {proto.get('crop') or 'none (whole images)'}; "
                 f"network width: {preset.get('width') or 'as published'}; seeds: {seeds}.")
    if prog:
        lines.append(f"Done: {prog.get('jobs_done')}/{prog.get('jobs_planned')} jobs ({100 * prog.get('fraction_done', 0):.0f}%)"
                     + (", stopped by the time budget." if prog.get("stopped_by_time_budget") else "."))
    lines += ["", "PSNR (dB) at t*, no ground truth used to stop; mean over seeds ± std over seeds.", ""]
    lines.append("| image | " + " | ".join(methods) + " |")
    lines.append("|---|" + "---|" * len(methods))
    for im in images:
        cells = []
        for m in methods:
            v = [r["psnr"] for r in recs.values() if r["method"] == m and r["image"] == im and r["psnr"] is not None]
            cells.append("-" if not v else (f"{np.mean(v):.2f} ± {np.std(v, ddof=1):.2f}" if len(v) > 1 else f"{v[0]:.2f}"))
        lines.append(f"| {im} | " + " | ".join(cells) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{_f(summ[m]['psnr'])}**" for m in methods) + " |")
    lines.append("| seed spread (std of per-seed means) | " + " | ".join(_f(summ[m].get("seed_std")) for m in methods) + " |")
    lines.append("| vs dip-skip (paired mean ± std; wins) | " + " | ".join(
        (f"{summ[m]['vs_dip_skip']:+.2f} ± {_f(summ[m].get('vs_dip_skip_std'))}; {summ[m]['wins_vs_dip_skip']}" if "vs_dip_skip" in summ[m] else "-")
        for m in methods) + " |")
    lines.append("| ORACLE best PSNR (uses ground truth) | " + " | ".join(_f(summ[m].get("oracle_psnr")) for m in methods) + " |")
    lines.append("| paper (full-size images) | " + " | ".join(PAPER.get(key, {}).get(m, "-") for m in methods) + " |")
    lines += ["", "| method | t* | PSNR@t* | ORACLE PSNR (mean iteration) | SSIM | seconds | s/iteration | device | runs |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m in methods:
        s = summ[m]
        orc = f"{_f(s.get('oracle_psnr'))} ({s['oracle_iteration']:.0f})" if s.get("oracle_psnr") is not None else "-"
        lines.append(f"| {m} | {', '.join(map(str, s.get('t_star', []))) or '-'} | {_f(s['psnr'])} | {orc} | {_f(s['ssim'], 4)} | "
                     f"{_f(s['seconds'], 1)} | {_f(s.get('seconds_per_iteration'), 3)} | {'; '.join(s.get('device', [])) or 'cpu'} | {s['n']} |")
    env = data.get("environment", {})
    commands = list(dict.fromkeys(r["command"] for r in data.get("runs", []) if r.get("command"))) or [data.get("command", "")]
    lines += [""] + [f"Command: `{c}`" for c in commands] + ["",
              f"Machine: {env.get('cpu')} ({env.get('cpu_count')} cores, {env.get('torch_threads')} torch threads); "
              f"GPU: {env.get('cuda') or 'none'}; torch {env.get('torch')}; python {env.get('python')}; started {env.get('date')}.", ""]
    return "\n".join(lines)


def plot_curves(data: dict[str, Any], path: Path) -> Path:
    """PSNR versus iteration: mean over images and seeds per DIP method (band: ± std), t* marked,
    classical baselines as horizontal lines. Rendered by matplotlib's Agg canvas (no pyplot, no display)."""
    try:  # a bare Figure renders with the Agg canvas and leaves pyplot's global backend alone
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'nasdip-zoo[bench]'") from e
    methods, _, _ = _order(data)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for i, m in enumerate(methods):
        rows = [r for r in data["records"].values() if r["method"] == m]
        colour = f"C{i % 10}"
        if rows and rows[0]["kind"] == "dip" and rows[0].get("curve"):
            n = min(len(r["curve"]) for r in rows)
            every = rows[0]["curve_every"]
            arr = np.array([[np.nan if v is None else v for v in r["curve"][:n]] for r in rows], dtype=np.float64)
            x = np.arange(1, n + 1) * every
            mean = np.nanmean(arr, axis=0)
            std = np.nanstd(arr, axis=0)
            ax.plot(x, mean, color=colour, label=m)
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
            ax.axvline(rows[0]["t_star"], color=colour, linestyle=":", linewidth=1)
        elif rows:
            ax.axhline(float(np.mean([r["psnr"] for r in rows if r["psnr"] is not None])), color=colour,
                       linestyle="--", linewidth=1, label=f"{m} (classical)")
    proto = data["protocol"]
    ax.set_xlabel("iteration")
    ax.set_ylabel("PSNR (dB), protocol metric")
    ax.set_title(f"{proto['task']}{' x' + str(proto['scale']) if proto['task'] == 'sr' else ''}: mean over images and seeds (dotted: t*)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def write_report(folder: str | Path) -> list[Path]:
    """Write ``results.md`` and ``psnr_vs_iteration.png`` next to ``results.json`` in ``folder``."""
    folder = Path(folder)
    data = _load(folder)
    if not data.get("records"):
        return [folder / "results.json"]
    md = folder / "results.md"
    text = markdown_table(data)
    atomic_write(md, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    png = plot_curves(data, folder / "psnr_vs_iteration.png")
    return [folder / "results.json", md, png]
