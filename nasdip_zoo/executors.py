"""Where jobs run: in this process one after another, or spread over a Ray cluster (issue 7, point 4).

Both executors call ``on_result(item, result)`` in this (the driver) process as each job finishes,
so results files are written by one process, atomically, exactly as a local run writes them, and
a run that stops part-way resumes from them. Ray is optional (``pip install 'nasdip-zoo[ray]'``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

__all__ = ["EXECUTORS", "run_local", "run_ray", "run_with", "add_executor_arguments"]

EXECUTORS = ("local", "ray")
_PKG_PARENT = str(Path(__file__).resolve().parents[1])


def run_local(fn: Callable[[Any], Any], items: Iterable[Any], on_result: Callable[[Any, Any], None],
              should_stop: Callable[[], bool] | None = None) -> int:
    """Run ``fn(item)`` for each item in order; returns how many ran."""
    n = 0
    for item in items:
        if should_stop is not None and should_stop():
            break
        on_result(item, fn(item))
        n += 1
    return n


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise ImportError("--executor ray needs Ray: pip install 'nasdip-zoo[ray]'") from e
    return ray


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


def run_ray(fn: Callable[[Any], Any], items: Sequence[Any], on_result: Callable[[Any, Any], None], *,
            address: str | None = None, num_cpus: float = 1, num_gpus: float = 0,
            local_cpus: int | None = None, should_stop: Callable[[], bool] | None = None) -> int:
    """Run ``fn(item)`` as Ray tasks (``num_cpus``/``num_gpus`` each) on the cluster at ``address``, or on a
    local Ray instance (``local_cpus`` CPUs) when None; uses an instance already started by the caller.

    Results are handed to ``on_result`` as they finish. A failing job cancels the others and raises its
    error here (finished jobs were already recorded). ``should_stop()`` returning True cancels what is
    left (a time budget). Returns how many jobs finished.
    """
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING"}
        if address is None:
            kw["num_cpus"] = local_cpus
            # local workers import this checkout of nasdip_zoo (a cluster needs it installed on every node)
            path = os.pathsep.join(p for p in (_PKG_PARENT, os.environ.get("PYTHONPATH", "")) if p)
            kw["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
        else:
            kw["address"] = address
        ray.init(**kw)
        started = True
    try:
        task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(_call)
        fn_ref = ray.put(fn)
        pending = {task.remote(fn_ref, item): item for item in items}
        n = 0
        while pending:
            if should_stop is not None and should_stop():
                for ref in pending:
                    ray.cancel(ref)
                break
            done, _ = ray.wait(list(pending), num_returns=1, timeout=5.0)
            for ref in done:
                item = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    for other in pending:
                        ray.cancel(other)
                    cause = e.as_instanceof_cause() if hasattr(e, "as_instanceof_cause") else e
                    raise cause from None
                on_result(item, result)
                n += 1
        return n
    finally:
        if started:
            ray.shutdown()


def run_with(executor: str, fn: Callable[[Any], Any], items: Sequence[Any], on_result: Callable[[Any, Any], None],
             *, should_stop: Callable[[], bool] | None = None, **ray_options: Any) -> int:
    """Dispatch to :func:`run_local` or :func:`run_ray` by name ('local' or 'ray')."""
    if executor == "local":
        return run_local(fn, items, on_result, should_stop)
    if executor == "ray":
        return run_ray(fn, items, on_result, should_stop=should_stop, **ray_options)
    raise ValueError(f"executor {executor!r} is not one of {EXECUTORS}")


def add_executor_arguments(p: Any, prefix: str = "") -> None:
    """``--executor``, ``--ray-address``, ``--cpus-per-job``, ``--gpus-per-job`` on an argparse parser."""
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help=f"{prefix}run the (method, image) jobs here one by one, or as Ray tasks")
    p.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--cpus-per-job", type=float, default=1, help="Ray: CPUs per job (default 1)")
    p.add_argument("--gpus-per-job", type=float, default=0, help="Ray: GPUs per job (default 0; e.g. 1 or 0.5)")
