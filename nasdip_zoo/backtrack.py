"""DIP's backtracking rule, shared by every restorer loop (``restore``'s eager and deferred loops and
``restore_many``): an iteration is rolled back when its loss or output is not finite, or when the
observation PSNR drops by more than ``backtrack_db`` below the last accepted iteration's."""

from __future__ import annotations

import math

from .metrics import psnr_from_mse

__all__ = ["judge", "no_good_state", "keeps_failing"]


def judge(loss: float, output_finite: bool, last_obs_psnr: float | None,
          backtrack_db: float | None) -> tuple[float, str | None]:
    """``(observation PSNR, why the iteration must be rolled back or None)`` for one iteration's loss."""
    finite = math.isfinite(loss) and output_finite
    if not finite:
        return math.nan, "NaN/Inf in the output or loss"
    obs = psnr_from_mse(loss)
    if backtrack_db is not None and last_obs_psnr is not None and obs - last_obs_psnr < -backtrack_db:
        return obs, f"a drop of more than {backtrack_db} dB"
    return obs, None


def no_good_state(iteration: int, why: str) -> str:
    """The error when the very first iterations fail: there is nothing to roll back to."""
    return f"iteration {iteration}: {why} before any good state to roll back to; try a lower lr"


def keeps_failing(iteration: int, in_a_row: int, why: str) -> str:
    """The error when rollbacks do not help: ``in_a_row`` in a row."""
    return f"iteration {iteration}: {in_a_row} rollbacks in a row ({why}); the run does not recover, try a lower lr"
