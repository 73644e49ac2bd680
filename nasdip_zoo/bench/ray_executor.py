"""``nasdip bench --executor ray``: the runner's (method, image, seed) jobs as Ray tasks (issue 7, point 4).

Each task prepares its sample and runs the job exactly as the local runner does; this process
records every result into the same ``results.json`` as it arrives, so files, resume and reports
are those of a local run. With a time budget, jobs still running when it ends are cancelled.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from ..executors import run_ray
from .runner import Job, run_classical, run_dip

__all__ = ["run_jobs_ray"]


def _spec(job: Job, device: str) -> tuple:
    return (job.store.protocol, job.image, job.seed, job.method, job.iterations, job.store.config.get("width"), device)


def _run_spec(indexed: tuple[int, tuple]) -> dict[str, Any]:
    _, (protocol, image, seed, method, iterations, width, device) = indexed
    sample = protocol.prepare(image, seed)
    if iterations is None:
        return run_classical(method, sample, protocol)
    return run_dip(method, sample, protocol, seed=seed, iterations=iterations, width=width, device=device,
                   curve_every=max(1, iterations // 300))


def run_jobs_ray(todo: Sequence[Job], *, device: str, t0: float, time_budget: float | None, bar: Any = None,
                 log: Callable[[str], None] | None = None, address: str | None = None, cpus_per_job: float = 1,
                 gpus_per_job: float = 0, local_cpus: int | None = None) -> tuple[int, bool]:
    """Run ``todo`` on Ray, recording results as they finish; returns (jobs run, stopped by the budget)."""
    stopped = False

    def record(indexed: tuple[int, tuple], rec: dict[str, Any]) -> None:
        job = todo[indexed[0]]
        job.store.add(job, rec)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({"last": f"{job.store.protocol.key} {job.method} {rec['psnr']}"}, refresh=False)
        if log:
            log(f"{job.store.protocol.key} {job.key}: {rec['psnr']} dB in {rec['seconds']} s")

    def over_budget() -> bool:
        nonlocal stopped
        stopped = stopped or (time_budget is not None and time.monotonic() - t0 > time_budget)
        return stopped

    items = [(i, _spec(job, device)) for i, job in enumerate(todo)]
    ran = run_ray(_run_spec, items, record, address=address, num_cpus=cpus_per_job, num_gpus=gpus_per_job,
                  local_cpus=local_cpus, should_stop=over_budget)
    return ran, stopped
