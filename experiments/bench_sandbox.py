"""Throughput of the code sandbox on HumanEval's 164 canonical solutions.

For each worker count, runs every canonical solution against its tests through
:func:`bgpo_lightning.sandbox.run_many` and reports programs per second, for three ways of
running a program:

* ``sandbox``: the real sandbox (namespaces, chroot, separate user ids, seccomp, harness in
  its own process);
* ``sandbox_off``: the same sandbox with ``isolation="off"`` (no namespaces or chroot), to
  isolate the cost of the namespaces;
* ``plain``: one ``python -I`` subprocess per program running program and tests together
  (what an unsandboxed evaluator does), as the baseline.

It also times one trivial program run serially (median of ``--serial`` runs) to give the
per-program overhead of each. Prints a table and writes ``results.csv`` and ``results.json``
under ``--out`` (default ``runs/bench_sandbox``)::

    python -m experiments.bench_sandbox --workers 1 2 4 8
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bgpo_lightning.sandbox import SandboxJob, SandboxLimits, describe_isolation, run_many
from bgpo_lightning.tasks.humaneval import HumanEvalTask

MODES = ("sandbox", "sandbox_off", "plain")
TRIVIAL = SandboxJob("def f(x):\n    return x + 1\n", "assert f(1) == 2\n")


def humaneval_jobs() -> list[SandboxJob]:
    """The 164 canonical solutions with their tests."""
    task = HumanEvalTask()
    return [task.job(ex.target, ex) for ex in task.load()]


def run_plain(job: SandboxJob, limits: SandboxLimits) -> bool:
    """Program and tests in one unsandboxed ``python -I`` process; passed iff exit 0."""
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", job.program + "\n" + job.tests],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=limits.wall_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def runner(mode: str, limits: SandboxLimits) -> Callable[[Sequence[SandboxJob], int], list[bool]]:
    """A function running jobs with a number of workers and returning which passed."""
    if mode == "plain":

        def plain(jobs: Sequence[SandboxJob], workers: int) -> list[bool]:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                return list(pool.map(lambda job: run_plain(job, limits), jobs))

        return plain
    isolation = "auto" if mode == "sandbox" else "off"
    return lambda jobs, workers: [r.passed for r in run_many(jobs, limits, workers, isolation)]


def bench(workers: Sequence[int], serial: int, out: Path) -> list[dict]:
    limits = SandboxLimits()
    jobs = humaneval_jobs()
    rows = []
    for mode in MODES:
        run = runner(mode, limits)
        run([TRIVIAL], 1)  # warm-up: starts the fork server, fills caches
        times = []
        for _ in range(serial):
            start = time.perf_counter()
            assert run([TRIVIAL], 1) == [True], mode
            times.append(time.perf_counter() - start)
        per_program_ms = 1000 * statistics.median(times)
        for n in workers:
            start = time.perf_counter()
            passed = run(jobs, n)
            seconds = time.perf_counter() - start
            row = {
                "mode": mode,
                "workers": n,
                "programs": len(jobs),
                "passed": sum(passed),
                "seconds": round(seconds, 3),
                "programs_per_s": round(len(jobs) / seconds, 1),
                "trivial_serial_ms": round(per_program_ms, 1),
            }
            rows.append(row)
            print(
                f"{mode:12s} workers={n:<2d} {row['programs_per_s']:7.1f} programs/s "
                f"({row['passed']}/{len(jobs)} passed, {seconds:.2f} s)",
                flush=True,
            )
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    machine = {
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "isolation": describe_isolation().splitlines(),
    }
    (out / "results.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    return rows


def table(rows: list[dict]) -> str:
    """A Markdown table: programs/s per mode and worker count, plus serial overhead."""
    workers = sorted({r["workers"] for r in rows})
    lines = [
        "| mode | " + " | ".join(f"{n} workers" for n in workers) + " | trivial program, serial |",
        "|---|" + "---|" * len(workers) + "---|",
    ]
    for mode in MODES:
        mine = {r["workers"]: r for r in rows if r["mode"] == mode}
        cells = [f"{mine[n]['programs_per_s']:.1f}/s" for n in workers]
        lines.append(
            f"| {mode} | "
            + " | ".join(cells)
            + f" | {mine[workers[0]]['trivial_serial_ms']:.0f} ms |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--serial", type=int, default=30, help="serial runs of a trivial program")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_sandbox"))
    args = parser.parse_args(argv)
    print(describe_isolation(), flush=True)
    rows = bench(args.workers, args.serial, args.out)
    print(table(rows))
    print(f"wrote {args.out / 'results.csv'} and {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
