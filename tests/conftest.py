"""Shared fixtures: where the benchmark data lives (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def find_data_dir() -> Path | None:
    """../shared/data next to the checkout, else $NASDIP_DATA, else /work/shared/data; None if none exists."""
    candidates = [Path(__file__).resolve().parents[1] / ".." / "shared" / "data"]
    if os.environ.get("NASDIP_DATA"):
        candidates.append(Path(os.environ["NASDIP_DATA"]))
    candidates.append(Path("/work/shared/data"))
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = find_data_dir()
    if d is None:
        pytest.skip("benchmark data not found (../shared/data, $NASDIP_DATA or /work/shared/data)")
    return d
