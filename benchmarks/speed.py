"""Speed of DIP's iteration per zoo genotype, image size, device and fast path (issue 7, point 1).

Times exactly the restorer's iteration (``nasdip_zoo.fastpath.DIPStep``: input noise, forward,
loss, backward, Adam; plus the host read of the loss and the backtracking snapshot, every
iteration for the reference loop and every ``k`` for ``syncK`` variants). Median of repeats after
warm-up; variants are interleaved round by round so a shared machine slows them alike. Every
variant is reported as a ratio against plain eager float32 measured in the same run.

FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over one eager iteration, forward + backward
(convolutions and matrix products only: BatchNorm, activations, interpolation and Adam are not
counted). The achieved FLOP/s is compared with the device's dense-convolution throughput measured
here the way an iteration uses it (forward + input and weight gradients, channels-last): on CUDA a
large 3x3 convolution in fp32 (torch's default TF32) and bf16; on CPU the best rate of the zoo's
3x3 128 -> 128 layer at 16-128 px in fp32 (``--no-flops`` skips both). A measured rate, not the
hardware's theoretical peak: a whole iteration can come close to it or, on CPU, pass it a little.

    PYTHONPATH=. python benchmarks/speed.py --device cpu --genotypes nasdip-sr --sizes 128
    PYTHONPATH=. python benchmarks/speed.py --quick
    PYTHONPATH=. python benchmarks/speed.py --device cuda --sizes 128 256 512 --many 8
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nasdip_zoo.fastpath import DIPStep, FastPath  # noqa: E402
from nasdip_zoo.genotype import write_json_atomic  # noqa: E402

GENOTYPES = ("nasdip-sr", "nasdip-denoise", "nasdip-inpaint", "dip-skip")
TASK_OF = {"nasdip-sr": "sr", "nasdip-denoise": "denoise", "nasdip-inpaint": "inpaint", "dip-skip": "denoise"}
CPU_VARIANTS = ("eager", "cl", "up", "ip", "fused", "sync25", "cl+up+ip", "cl+up+ip+sync25", "auto")
CUDA_VARIANTS = ("eager", "cl", "up", "fused", "cl+fused+sync25", "cl+up+ip+fused+sync25", "auto", "bf16",
                 "cl+up+ip+bf16+fused+sync25", "cl+up+ip+bf16+fused+sync25+graphs")


# ------------------------------------------------------------------------------------ problems


class Problem:
    """One (genotype, size) DIP problem on a device: a seeded network factory, operator, target and input."""

    def __init__(self, genotype: str, size: int, device: torch.device, width: int | None = None) -> None:
        from nasdip_zoo.network import build_nasdip
        from nasdip_zoo.operators import Denoising, Inpainting, SuperResolution
        from nasdip_zoo.zoo import get_card

        card = get_card(genotype)
        self.name, self.size, self.device = genotype, size, device
        self.task = TASK_OF.get(genotype, card.task if card.task != "any" else "denoise")
        dip = card.dip_for(self.task)
        self.lr, self.reg = dip.lr, dip.reg_noise_std
        self.genotype = card.genotype if width is None else card.genotype.with_width(width)
        self.out_channels = card.out_channels
        g = torch.Generator().manual_seed(0)
        c = self.out_channels
        if self.task == "sr":
            self.operator = SuperResolution(4)
            target = torch.rand(1, c, size // 4, size // 4, generator=g)
        elif self.task == "inpaint":
            self.operator = Inpainting((torch.rand(1, 1, size, size, generator=g) > 0.5).float())
            target = torch.rand(1, c, size, size, generator=g)
        else:
            self.operator = Denoising()
            target = torch.rand(1, c, size, size, generator=g)
        self.operator = self.operator.to(device)
        self.target = self.operator.prepare(target.to(device))
        self.z = (torch.rand(1, dip.input_channels, size, size, generator=g) * dip.input_scale).to(device)
        self.in_channels = dip.input_channels
        self._build = build_nasdip

    def auto(self) -> FastPath:
        """What ``DIPRestorer(fast="auto")`` picks for a long run of this problem."""
        with torch.random.fork_rng(devices=[]):
            net = self._build(self.genotype, in_channels=self.in_channels, out_channels=self.out_channels)
        return FastPath.auto(self.device, net=net)

    def step(self, fast: FastPath) -> DIPStep:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = self._build(self.genotype, in_channels=self.in_channels, out_channels=self.out_channels)
        return DIPStep(net.to(self.device).train(), self.operator, self.target, self.lr, fast)


class Runner:
    """Runs the restorer's iteration for one step: noise, step, and the loop's host read + snapshot every k."""

    def __init__(self, problem: Problem, step: DIPStep) -> None:
        self.p, self.step = problem, step
        self.gen = torch.Generator(device=problem.device).manual_seed(1)
        self.k = step.fast.sync_every
        self.snap = step.snapshot()
        self.i = 0

    def iterate(self, n: int) -> None:
        p = self.p
        for _ in range(n):
            x = p.z + torch.randn(p.z.shape, generator=self.gen, device=p.device) * p.reg
            out, loss = self.step(x)
            self.i += 1
            if self.i % self.k == 0:
                float(loss.detach())  # the loop's host read (NaN check, backtracking)
                self.step.snapshot(self.snap)


def _time_block(runner: Runner, n: int, device: torch.device) -> float:
    """Milliseconds per iteration of ``n`` iterations (CUDA events on GPU, perf_counter on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        runner.iterate(n)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / n
    t0 = time.perf_counter()
    runner.iterate(n)
    return (time.perf_counter() - t0) * 1000.0 / n


class _RSSPeak:
    """Sampled peak resident set size (CPU): a thread reads /proc/self/statm every millisecond."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.peak = self.base = self._rss()
        self._stop = threading.Event()

    def _rss(self) -> int:
        try:
            return int(Path("/proc/self/statm").read_text().split()[1]) * self.page
        except OSError:
            return 0

    def __enter__(self) -> "_RSSPeak":
        def loop() -> None:
            while not self._stop.is_set():
                self.peak = max(self.peak, self._rss())
                time.sleep(0.001)

        self._t = threading.Thread(target=loop, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())


def count_flops(problem: Problem) -> int:
    """FLOPs of one eager iteration, forward + backward (FlopCounterMode: convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    step = problem.step(FastPath.off())
    with FlopCounterMode(display=False) as fc:
        step.forward_backward(problem.z)
    total = int(fc.get_total_flops())
    del step
    return total


FP32_PEAK = {"cuda": "fp32 (TF32 as torch defaults)", "cpu": "fp32"}


def _conv_rate(device: torch.device, dtype: torch.dtype, n: int, c: int, hw: int, seconds: float) -> float:
    """FLOP/s of one 3x3 convolution c -> c on n x c x hw x hw, forward + input and weight gradients."""
    cuda = device.type == "cuda"
    x = torch.randn(n, c, hw, hw, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    g = torch.randn_like(x)
    conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False).to(device=device, dtype=dtype, memory_format=torch.channels_last)

    def fwd_bwd() -> None:
        conv(x).backward(g)
        x.grad = None
        conv.weight.grad = None

    for _ in range(3):
        fwd_bwd()
    if cuda:
        torch.cuda.synchronize(device)
    times: list[float] = []
    t_end = time.perf_counter() + seconds
    while len(times) < 20 and (len(times) < 3 or time.perf_counter() < t_end):
        if cuda:
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fwd_bwd()
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e) / 1000.0)
        else:
            t0 = time.perf_counter()
            fwd_bwd()
            times.append(time.perf_counter() - t0)
    del x, g, conv
    if cuda:
        torch.cuda.empty_cache()
    return 3 * 2.0 * n * c * c * 9 * hw * hw / statistics.median(times)


def conv_peak(device: torch.device, seconds: float = 10.0) -> dict[str, float]:
    """The device's dense-convolution throughput (FLOP/s) as an iteration uses it: 3x3 convolutions,
    forward + backward (input and weight gradients, 3x the forward FLOPs), channels-last, median of runs.

    CUDA: 256->256 channels on 32x256x128x128, fp32 (TF32 as torch defaults) and bf16. CPU: fp32, the
    best of the zoo's own 128->128 layer at 16, 32, 64 and 128 px (oneDNN's rate depends on the size).
    """
    if device.type == "cuda":
        return {FP32_PEAK["cuda"]: _conv_rate(device, torch.float32, 32, 256, 128, seconds / 2),
                "bf16": _conv_rate(device, torch.bfloat16, 32, 256, 128, seconds / 2)}
    return {FP32_PEAK["cpu"]: max(_conv_rate(device, torch.float32, 1, 128, hw, seconds / 4) for hw in (16, 32, 64, 128))}


# ------------------------------------------------------------------------------------ measurement


def measure_problem(problem: Problem, variants: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    dev = problem.device
    rows: dict[str, dict[str, Any]] = {}
    runners: dict[str, Runner] = {}
    for label in variants:
        row: dict[str, Any] = {"genotype": problem.name, "size": problem.size, "task": problem.task, "variant": label}
        rows[label] = row
        try:
            fast = problem.auto() if label == "auto" else FastPath.from_label(label, dev)
            row["fast"] = fast.label
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
                base = torch.cuda.memory_allocated(dev)
                torch.cuda.reset_peak_memory_stats(dev)
                t0 = time.perf_counter()
                runner = Runner(problem, problem.step(fast))
                runner.iterate(args.warmup)
                torch.cuda.synchronize(dev)
                row["warmup_s"] = round(time.perf_counter() - t0, 2)
                row["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(dev) - base)
                row["memory_method"] = "torch.cuda.max_memory_allocated during warm-up, minus what was allocated before"
            else:
                with _RSSPeak() as rss:
                    t0 = time.perf_counter()
                    runner = Runner(problem, problem.step(fast))
                    runner.iterate(args.warmup)
                    row["warmup_s"] = round(time.perf_counter() - t0, 2)
                row["peak_memory_bytes"] = int(rss.peak - rss.base)
                row["memory_method"] = "sampled peak RSS during construction + warm-up, minus RSS before (approximate)"
            runners[label] = runner
        except Exception as e:  # noqa: BLE001 - one failing variant must not lose the others
            row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.repeats):  # interleaved rounds
        for label, runner in list(runners.items()):
            try:
                times[label].append(_time_block(runner, args.iters, dev))
            except Exception as e:  # noqa: BLE001
                rows[label]["error"] = f"{type(e).__name__}: {str(e)[:300]}"
                runners.pop(label)
    for label, ts in times.items():
        if ts and "error" not in rows[label]:
            med = statistics.median(ts)
            rows[label].update(ms_per_iter=round(med, 3), ms_all=[round(t, 3) for t in ts],
                               iters_per_s=round(1000.0 / med, 3))
    base = rows.get("eager", {}).get("ms_per_iter")
    for row in rows.values():
        if base and row.get("ms_per_iter"):
            row["speedup_vs_eager"] = round(base / row["ms_per_iter"], 3)
    runners.clear()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return list(rows.values())


def measure_many(genotype: str, size: int, n: int, device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    """Throughput (images x iterations / s) of restore_many's fused program against N sequential eager runs."""
    from nasdip_zoo.many import run_many

    p = Problem(genotype, size, device, width=args.width)
    iters = max(2, args.iters)
    seq_runners = [Runner(p, p.step(FastPath.off())) for _ in range(n)]

    def sequential() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for r in seq_runners:
            r.iterate(iters)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    def fused() -> float:
        nets = [p.step(FastPath.off()).net for _ in range(n)]
        z = p.z.expand(n, *p.z.shape).contiguous()
        gens = [torch.Generator(device=device).manual_seed(i) for i in range(n)]
        targets = p.target.expand(n, *p.target.shape).contiguous()
        op = p.operator
        run = run_many(nets, z, gens, targets, lambda out, _e: op(out), extras=None, ground_truths=None,
                       iterations=iters, lr=p.lr, reg_noise_std=p.reg, ema_weight=None, backtrack_db=5.0,
                       max_rollbacks_in_a_row=20)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return run.seconds

    sequential(), fused()  # warm-up
    seq = [sequential() for _ in range(max(1, args.repeats // 2))]
    fus = [fused() for _ in range(max(1, args.repeats // 2))]
    seq_tp = n * iters / statistics.median(seq)
    fus_tp = n * iters / statistics.median(fus)
    return {"genotype": genotype, "size": size, "n": n, "iterations": iters, "width": args.width,
            "sequential_images_iters_per_s": round(seq_tp, 3), "restore_many_images_iters_per_s": round(fus_tp, 3),
            "speedup": round(fus_tp / seq_tp, 3)}


# ------------------------------------------------------------------------------------ report


def machine(device: torch.device) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def _fmt_bytes(b: Any) -> str:
    return "" if b is None else f"{b / 2**20:.0f} MiB"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"# DIP iteration speed ({report['device']}, {report['date']})", "",
             f"Command: `{report['command']}`", "",
             f"Machine: {m.get('gpu') or m['cpu']} ({m['cpu_count']} CPUs, {m['torch_threads']} torch threads), "
             f"torch {m['torch']}, Python {m['python']}" + (f", load average {m['load_average']}" if 'load_average' in m else ""),
             "", "ms per iteration = median of repeats after warm-up (noise + forward + backward + Adam + the loop's "
             "host read and backtracking snapshot, every iteration or every k for syncK). Speed-up is against eager "
             "float32 in the same run. FLOPs: FlopCounterMode, forward + backward of one iteration "
             "(convolutions and matmuls only).", ""]
    if report["device"].startswith("cpu"):
        lines += ["CPU peak memory is the sampled increase of the process's resident set during a variant's "
                  "construction and warm-up: approximate, and 0 when memory freed by earlier variants is reused.", ""]
    if report.get("conv_peak_flops"):
        lines.append("Measured dense-convolution peak (3x3 convolution, forward + backward, channels-last; see the script's docstring): "
                     + ", ".join(f"{k}: {v / 1e12:.3f} TFLOP/s" for k, v in report["conv_peak_flops"].items()))
        lines.append("")
    lines += ["| genotype | size | variant | ms/iter | iters/s | speed-up | peak memory | GFLOP/iter | TFLOP/s | % of peak |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        if "error" in r:
            lines.append(f"| {r['genotype']} | {r['size']} | {r['variant']} | error: {r['error'][:80]} | | | | | | |")
            continue
        gf = r.get("flops")
        lines.append(
            f"| {r['genotype']} | {r['size']} | {r['variant']} | {r.get('ms_per_iter', '')} | {r.get('iters_per_s', '')} | "
            f"{r.get('speedup_vs_eager', '')} | {_fmt_bytes(r.get('peak_memory_bytes'))} | "
            f"{'' if gf is None else f'{gf / 1e9:.1f}'} | {r.get('achieved_tflops', '')} | {r.get('fraction_of_peak_pct', '')} |")
    if report.get("many"):
        lines += ["", "restore_many (N images as N independent networks in one vmapped program) against N sequential eager runs:", "",
                  "| genotype | size | N | width | sequential img*it/s | restore_many img*it/s | speed-up |", "|---|---|---|---|---|---|---|"]
        for r in report["many"]:
            if "error" in r:
                lines.append(f"| {r['genotype']} | {r['size']} | {r['n']} | | error: {r['error'][:80]} | | |")
            else:
                lines.append(f"| {r['genotype']} | {r['size']} | {r['n']} | {r['width'] or 'full'} | "
                             f"{r['sequential_images_iters_per_s']} | {r['restore_many_images_iters_per_s']} | {r['speedup']} |")
    if report.get("skipped"):
        lines += ["", "Not measured (time budget): " + ", ".join(report["skipped"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--genotypes", nargs="+", default=list(GENOTYPES))
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 128, 256, 512])
    ap.add_argument("--variants", nargs="+", help="fast-path labels (eager always added first); default per device")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up iterations per variant (compilation happens here)")
    ap.add_argument("--repeats", type=int, default=5, help="timed blocks per variant (median)")
    ap.add_argument("--iters", type=int, default=5, help="iterations per timed block")
    ap.add_argument("--width", type=int, help="override the channel width (default: the released networks)")
    ap.add_argument("--many", type=int, help="also measure restore_many with N images against N sequential runs")
    ap.add_argument("--many-size", type=int, default=64, help="image size for --many")
    ap.add_argument("--many-genotype", default="nasdip-denoise")
    ap.add_argument("--many-only", action="store_true", help="only the --many measurement")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--time-budget", type=float, help="seconds: start no further problem after this")
    ap.add_argument("--no-flops", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke run: nasdip-sr at 64 px, width 16, eager/cl/sync25, 1 warm-up")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for speed-<device>-<date>.{json,md}")
    ap.add_argument("--tag", default="", help="appended to the file names")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if args.quick:
        args.genotypes, args.sizes, args.width = ["nasdip-sr"], [64], args.width or 16
        args.variants = args.variants or ["eager", "cl", "sync25"]
        args.warmup, args.repeats, args.iters = 1, 3, 2
        args.many = args.many or None
    variants = list(args.variants or (CUDA_VARIANTS if device.type == "cuda" else CPU_VARIANTS))
    if "eager" not in variants:
        variants.insert(0, "eager")
    for v in variants:
        FastPath.from_label(v, device)  # fail early on a bad label
    date = dt.datetime.now(dt.timezone.utc)
    out = Path(args.out)
    stem = f"speed-{device.type}-{date:%Y-%m-%d}{'-' + args.tag if args.tag else ''}"
    report: dict[str, Any] = {
        "format": "nasdip-speed/1", "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "date": date.isoformat(timespec="seconds"), "device": str(device), "machine": machine(device),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out",)}, "variants": variants,
        "rows": [], "many": [], "skipped": [],
    }

    def write() -> None:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / f"{stem}.json", report)
        tmp = out / f".{stem}.md.tmp"
        tmp.write_text(markdown(report), encoding="utf-8")
        os.replace(tmp, out / f"{stem}.md")

    t_start = time.monotonic()
    if not args.no_flops:
        report["conv_peak_flops"] = conv_peak(device, seconds=2.0 if args.quick else 10.0)
        write()
    for s in ([] if args.many_only else args.sizes):  # every genotype at the first size before the next size
        for g in args.genotypes:
            if args.time_budget is not None and time.monotonic() - t_start > args.time_budget:
                report["skipped"].append(f"{g}@{s}")
                continue
            p = Problem(g, s, device, width=args.width)
            flops = None if args.no_flops else count_flops(p)
            rows = measure_problem(p, variants, args)
            for r in rows:
                r["flops"] = flops
                if flops and r.get("ms_per_iter"):
                    achieved = flops / (r["ms_per_iter"] / 1000.0)
                    r["achieved_tflops"] = round(achieved / 1e12, 3)
                    peaks = report.get("conv_peak_flops")
                    if peaks:
                        low = "bf16" in r["variant"] or "fp16" in r["variant"]
                        key = "bf16" if low else FP32_PEAK.get(device.type, FP32_PEAK["cuda"])
                        r["fraction_of_peak_pct"] = round(100.0 * achieved / peaks[key], 1)
            report["rows"] += rows
            print(markdown({**report, "rows": rows, "many": [], "skipped": []}).split("\n\n")[-1], flush=True)
            write()
            del p
    if args.many:
        try:
            report["many"].append(measure_many(args.many_genotype, args.many_size, args.many, device, args))
        except Exception as e:  # noqa: BLE001
            report["many"].append({"genotype": args.many_genotype, "size": args.many_size, "n": args.many,
                                   "error": f"{type(e).__name__}: {str(e)[:300]}"})
        print(report["many"][-1], flush=True)
    write()
    print(f"wrote {out / stem}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
