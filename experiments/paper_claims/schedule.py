"""Runs the whole study, many processes at once on one GPU, until done or out of time.

What is left to do is read from the files each step writes (``warmstart.json``,
``probe.json``, each run's ``result.json``), so a study cut off by its time budget continues
where it stopped when started again. Order: warm starts, the VRPO-OL probe, the sweep (every
learning rate with the first seed, the costliest methods first), then the other seeds of
each method as soon as its sweep is complete and its learning rate chosen.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from experiments.paper_claims import plan, results
from experiments.paper_claims.entry import CONCURRENCY_VARIABLE

#: A warm start trains in parts that end in time (see ``warm_start``): it is given what is
#: left of the budget less this margin for its start-up, test and export, and is not started
#: with less than the minimum left.
WARM_START_MARGIN_S = 60.0
WARM_START_MIN_S = 180.0
#: With ``resumable`` runs (a checkpoint after every batch, see ``resume``), a run is started
#: whenever this much is left: what it does before the deadline is kept for the next call.
RESUMABLE_MIN_S = 180.0

#: Relative cost of a method's batch (likelihood passes), to start the longest runs first.
COST = {
    "bgpo_nt32": 32,
    "bgpo_nt16": 26,  # with the gradient-statistics measurements
    "bgpo_sdmc": 16,
    "diffu_grpo": 14,
    "wd1": 13,
    "spg": 9,
    "vrpo_ol": 5,
    "bgpo_nt4": 4,
    "gdpo": 3,
    "bgpo_nt1": 1,
}


@dataclass(frozen=True)
class Job:
    """One process of the study; it is done when ``done_file`` exists."""

    name: str
    kind: str  # warm_start | probe | sweep | seeds
    task: str
    module: str
    args: tuple[str, ...]
    done_file: Path
    method: str | None = None

    def argv(self, root: Path) -> list[str]:
        return [sys.executable, "-m", self.module, *self.args, "--root", str(root)]


def _run_job(root: Path, key: plan.RunKey, kind: str, extra: tuple[str, ...]) -> Job:
    from experiments.paper_claims.run_one import run_dir

    args = ("--task", key.task, "--method", key.method, "--lr", f"{key.lr:g}")
    args += ("--seed", str(key.seed), *extra)
    done = run_dir(root, key) / "result.json"
    return Job(f"{key.task}/{key.name}", kind, key.task, "experiments.paper_claims.run_one",
               args, done, key.method)  # fmt: skip


def pending_jobs(root: Path, tasks: list[str], run_args: tuple[str, ...] = ()) -> list[Job]:
    """Every job whose inputs exist and whose output does not, in priority order."""
    first, sweep, seeds = [], [], []
    for task in tasks:
        if not (root / task / "warmstart.json").is_file():
            first.append(Job(f"{task}/warm_start", "warm_start", task,
                             "experiments.paper_claims.warm_start", ("--task", task),
                             root / task / "warmstart.json"))  # fmt: skip
            continue
        probed = (root / task / "probe.json").is_file()
        if not probed:
            first.append(Job(f"{task}/probe", "probe", task, "experiments.paper_claims.probe",
                             ("--task", task), root / task / "probe.json"))  # fmt: skip
        for key in plan.sweep_runs(task):
            if key.method != "vrpo_ol" or probed:
                sweep.append(_run_job(root, key, "sweep", run_args))
        runs = results.load_runs(root, task)
        for key in plan.seed_runs(task, results.complete_sweeps(runs, task)):
            seeds.append(_run_job(root, key, "seeds", run_args))

    def by_cost(jobs: list[Job]) -> list[Job]:
        return sorted(jobs, key=lambda j: -COST.get(j.method or "", 0))

    jobs = first + by_cost(sweep) + by_cost(seeds)
    return [j for j in jobs if not j.done_file.is_file()]


class Scheduler:
    """Keeps ``concurrency`` jobs running; never starts one that its expected duration
    would carry past the deadline (unless runs are ``resumable``), and stops what still runs
    at the deadline."""

    def __init__(self, root: Path, tasks: list[str], concurrency: int, budget_s: float,
                 run_args: tuple[str, ...] = (), default_s: float = 180.0,
                 poll_s: float = 2.0, resumable: bool = False) -> None:  # fmt: skip
        self.root, self.tasks, self.concurrency = root, tasks, concurrency
        self.resumable = resumable
        self.deadline = time.monotonic() + budget_s
        self.run_args, self.default_s, self.poll_s = run_args, default_s, poll_s
        self.running: dict[str, tuple[subprocess.Popen, float, Job]] = {}
        self.durations: dict[str, list[float]] = {}
        self.failed: set[str] = set()
        self.paused: set[str] = set()
        self.log_dir = root / "logs"

    def expected_s(self, job: Job) -> float:
        if job.kind == "warm_start":
            return WARM_START_MIN_S
        if self.resumable and job.kind in ("sweep", "seeds"):
            return RESUMABLE_MIN_S
        seen = self.durations.get(job.method or job.kind)
        return max(seen) if seen else self.default_s

    def _start(self, job: Job) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / (job.name.replace("/", "__") + ".log"), "w")  # noqa: SIM115
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        env[CONCURRENCY_VARIABLE] = str(self.concurrency)  # recorded by each run
        argv = job.argv(self.root)
        if job.kind == "warm_start":
            left = self.deadline - time.monotonic()
            argv += ["--budget-s", f"{max(left - WARM_START_MARGIN_S, 0.0):.0f}"]
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)  # fmt: skip
        log.close()
        self.running[job.name] = (proc, time.monotonic(), job)
        print(f"[schedule] start {job.name}", flush=True)

    def _reap(self) -> None:
        for name, (proc, started, job) in list(self.running.items()):
            if proc.poll() is None:
                continue
            del self.running[name]
            took = time.monotonic() - started
            self.durations.setdefault(job.method or job.kind, []).append(took)
            ok = job.done_file.is_file()
            # A warm start that used its time without finishing continues in the next call.
            paused = job.kind == "warm_start" and proc.returncode == 0 and not ok
            if paused:
                self.paused.add(name)
            elif not ok or proc.returncode != 0:
                self.failed.add(name)  # not retried in this call: it would fail again
            outcome = "paused (a part trained)" if paused else f"done rc={proc.returncode}"
            print(f"[schedule] {outcome} {name} in {took:.0f} s", flush=True)

    def stop_all(self) -> None:
        for proc, _, _ in self.running.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        for name, (proc, _, _) in list(self.running.items()):
            proc.wait()
            print(f"[schedule] stopped at the deadline: {name}", flush=True)
        self.running.clear()

    def run(self) -> dict:
        while True:
            self._reap()
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.stop_all()
                break
            skip = self.running.keys() | self.failed | self.paused
            pending = [j for j in pending_jobs(self.root, self.tasks, self.run_args)
                       if j.name not in skip]  # fmt: skip
            for job in pending:
                if len(self.running) >= self.concurrency:
                    break
                if self.expected_s(job) <= left:
                    self._start(job)
            if not self.running:
                break  # nothing runs and nothing more fits (or nothing is left)
            time.sleep(self.poll_s)
        left_over = pending_jobs(self.root, self.tasks, self.run_args)
        return {"failed": sorted(self.failed), "pending": [j.name for j in left_over]}
