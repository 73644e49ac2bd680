"""Shared test fixtures: the benchmark data folder (../shared/data beside the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# tiny test tensors gain nothing from intra-op threads, and threads spin badly when the cores are shared
torch.set_num_threads(1)


def _data_dir() -> Path | None:
    candidates = [
        Path(__file__).resolve().parents[1] / ".." / "shared" / "data",
        Path(os.environ.get("NASDIP_DATA", "/nonexistent")),
        Path("/work/shared/data"),
    ]
    for c in candidates:
        if (c / "SOURCES.md").is_file():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = _data_dir()
    if d is None:
        pytest.skip("benchmark data (../shared/data) not found")
    return d
