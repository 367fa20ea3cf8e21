"""Parallel runs: order, job forms and worker counts."""

from __future__ import annotations

import pytest

from bgpo_lightning.sandbox import SandboxJob, SandboxLimits, default_workers, run_many

LIMITS = SandboxLimits(wall_seconds=5, cpu_seconds=2)


def test_results_keep_input_order_whatever_finishes_first() -> None:
    jobs = [
        SandboxJob(
            f"import time\ntime.sleep({0.3 if i % 3 == 0 else 0})\ndef f():\n    return {i}\n",
            f"assert f() == {i if i != 4 else -1}",
        )
        for i in range(8)
    ]
    results = run_many(jobs, LIMITS, workers=4)
    assert [r.passed for r in results] == [i != 4 for i in range(8)]


def test_plain_strings_are_programs_without_tests() -> None:
    ok, bad = run_many(["x = 1\n", "raise SystemExit(3)\n"], LIMITS, workers=2)
    assert ok.passed and not bad.passed


def test_worker_count() -> None:
    assert default_workers() >= 1
    assert run_many([], LIMITS) == []
    with pytest.raises(ValueError, match="workers"):
        run_many(["x = 1"], LIMITS, workers=0)
    with pytest.raises(ValueError, match="isolation"):
        run_many(["x = 1"], LIMITS, isolation="none")
