"""Where candidates run: in this process, or as Ray tasks on a local instance or a cluster.

Both executors return results in submission order, whatever order they finish in, so a seeded
search writes the same log on either (apart from the ``seconds`` and ``worker`` fields).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

__all__ = ["LocalExecutor", "RayExecutor", "make_executor", "Call"]

Call = tuple[tuple[Any, ...], dict[str, Any]]
"""The positional and keyword arguments of one evaluation."""


class LocalExecutor:
    """Evaluate candidates one after another in this process."""

    name = "local"

    def map(self, fn: Callable[..., Any], calls: Sequence[Call]) -> Iterator[Any]:
        for args, kwargs in calls:
            yield fn(*args, **kwargs)

    def close(self) -> None:
        pass

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _run_with_threads(fn: Callable[..., Any], threads: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Body of a Ray task: pin torch's intra-op threads to the task's CPUs (its own worker process)."""
    import torch

    torch.set_num_threads(max(1, threads))
    return fn(*args, **kwargs)


class RayExecutor:
    """Candidates become ``ray.remote`` tasks needing ``task_cpus`` CPUs and ``task_gpus`` GPUs.

    ``address=None`` starts a local instance (``ray.init(num_cpus=num_cpus, include_dashboard=False)``)
    and shuts it down on :meth:`close`; ``address='auto'`` or ``'ray://host:port'`` joins a
    cluster (nasdip-zoo must be installed on its nodes). If Ray is already initialised it is reused.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = 2,
        task_cpus: float = 1,
        task_gpus: float = 0,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise ImportError("the Ray executor needs Ray: pip install 'nasdip-zoo[ray]'") from None
        self._ray = ray
        self.task_cpus = task_cpus
        self.task_gpus = task_gpus
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                kwargs["num_cpus"] = num_cpus
                # workers of a local instance must import nasdip_zoo from where this process does
                parent = str(Path(__file__).resolve().parents[2])
                path = os.pathsep.join(p for p in (parent, os.environ.get("PYTHONPATH", "")) if p)
                kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
            else:
                kwargs["address"] = address
            kwargs.update(init_kwargs or {})
            ray.init(**kwargs)
            self._started = True
        self._remote = ray.remote(num_cpus=task_cpus, num_gpus=task_gpus)(_run_with_threads)

    def map(self, fn: Callable[..., Any], calls: Sequence[Call]) -> Iterator[Any]:
        ray = self._ray
        fn_ref = ray.put(fn)
        threads = max(1, int(self.task_cpus))
        refs = [self._remote.remote(fn_ref, threads, args, kwargs) for args, kwargs in calls]
        for ref in refs:  # submission order: deterministic whatever finishes first
            yield ray.get(ref)

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def make_executor(kind: str = "local", **options: Any) -> LocalExecutor | RayExecutor:
    """``'local'`` or ``'ray'`` (options: address, num_cpus, task_cpus, task_gpus)."""
    if kind == "local":
        return LocalExecutor()
    if kind == "ray":
        return RayExecutor(**options)
    raise ValueError(f"executor={kind!r} is not known; choose 'local' or 'ray'")
