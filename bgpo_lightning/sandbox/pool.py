"""Many sandboxed runs in parallel, each in its own sandbox, results in input order."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bgpo_lightning.sandbox.limits import SandboxLimits
from bgpo_lightning.sandbox.result import SandboxResult
from bgpo_lightning.sandbox.runner import check_isolation, run_program


@dataclass(frozen=True)
class SandboxJob:
    """One program and the tests to run against it (see :func:`run_program`)."""

    program: str
    tests: str = ""
    expose: tuple[str, ...] = ()
    setup: str = ""  # trusted code the harness runs before the tests


def default_workers() -> int:
    """One worker per CPU the process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_many(
    jobs: Sequence[SandboxJob | str],
    limits: SandboxLimits | None = None,
    workers: int | None = None,
    isolation: str = "auto",
) -> list[SandboxResult]:
    """Runs each job in its own sandbox, ``workers`` at a time.

    Each worker thread drives one launcher process at a time and waits on its pipes, so
    threads cost no CPU of their own; the sandboxes run in parallel as processes.

    Args:
        jobs: Programs with their tests; a plain string is a program without tests.
        limits: Limits of every run.
        workers: Runs at once; ``None`` for one per usable CPU.
        isolation: As for :func:`run_program`.

    Returns:
        One result per job, in the order of ``jobs``.
    """
    check_isolation(isolation)
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    items = [SandboxJob(j) if isinstance(j, str) else j for j in jobs]

    def run(job: SandboxJob) -> SandboxResult:
        return run_program(job.program, job.tests, limits, isolation, job.expose, job.setup)

    if workers == 1 or len(items) <= 1:
        return [run(job) for job in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(run, items))
