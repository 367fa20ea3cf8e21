"""Columns derived from a measured rollout-mode row: whether it is the eager exact baseline,
its speed-up over that baseline, and its share of a BGPO step. Free of the model code, so the
tools that read the benchmark's output start quickly."""

from __future__ import annotations

import math

from experiments.sampler_modes import parse_mode


def is_exact_baseline(row: dict) -> bool:
    """Whether a row is the eager exact sampler (no cache, fixed schedule, float64), which the
    speed-ups of the other modes at the same rows are measured against."""
    mode = parse_mode(row["mode"])
    plain = mode.cache == "none" and mode.threshold is None and mode.precision == "float64"
    return plain and not row["compile"]


def add_step_fraction(row: dict, likelihood_s: float, likelihood_rows: int) -> None:
    """The row's share of a BGPO step: its rollout seconds over those plus the likelihood
    phase (n_t = 16, ``likelihood_s`` for ``likelihood_rows`` responses) scaled linearly to
    the row's count; NaN where either is unknown."""
    scaled = likelihood_s * row["rows"] / likelihood_rows
    seconds = row.get("seconds", math.nan)
    row["likelihood_s"] = scaled
    row["rollout_fraction_of_step"] = seconds / (seconds + scaled)


def speedup_over(row: dict, exact_row: dict | None) -> float:
    """The exact row's seconds over the row's; NaN where either was not timed."""
    if exact_row is None or "seconds" not in exact_row or "seconds" not in row:
        return math.nan
    return exact_row["seconds"] / row["seconds"]
