"""Math grading throughput, before and after the grading workers, on real references.

Grades every GSM8K test reference and every MATH500 reference against itself and reports
answers per second for three graders, each in its own fresh interpreter, run in turn
(``--repeats`` rounds, median reported):

* ``before``: the committed grader (``git show <rev>:bgpo_lightning/tasks/math_grader.py``
  and ``math_limits.py``, default rev ``HEAD``), imported from a temporary directory, in
  process as it was;
* ``after``: :func:`bgpo_lightning.tasks.math_grader.are_equivalent` on batches of
  ``--batch`` answers, as the tasks' ``score_batch`` calls it in training (grading in worker
  processes, one per core, each killed at the limit);
* ``after_one_by_one``: :func:`~bgpo_lightning.tasks.math_grader.is_equivalent`, one answer
  per call, on one worker (each answer waits for the other process);
* ``after_in_process``: :func:`~bgpo_lightning.tasks.math_grader.is_equivalent_in_process`,
  the same grading without workers, to show what the workers cost.

Start-up (imports, starting workers) is left out: each run first grades 16 warm-up pairs and
waits 2 s.
Prints a table and writes ``results.csv`` under ``--out`` (default ``runs/bench_math_grader``)::

    nice -n 10 python -m experiments.bench_math_grader --repeats 3
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
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets"
MODES = ("before", "after", "after_one_by_one", "after_in_process")
OLD_FILES = ("math_grader.py", "math_limits.py")

# Runs in a fresh interpreter: argv = mode, package root, references file; prints JSON.
_CHILD = r"""
import json, os, sys, time
mode, root, refs_path, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, root)
refs = json.load(open(refs_path))
answers, numeric = refs["answers"], refs["numeric"]
workers = lambda: set()
if mode == "before":
    from bgpo_lightning.tasks.math_grader import is_equivalent
    grade = lambda chunk: [is_equivalent(ref, ref) for ref in chunk]
else:
    from bgpo_lightning.tasks import math_grader as g, math_pool
    workers = lambda: math_pool.pool().worker_pids()
    if mode == "after":
        grade = lambda chunk: g.are_equivalent([(r, r) for r in chunk], numeric=numeric)
    else:
        one = g.is_equivalent if mode == "after_one_by_one" else g.is_equivalent_in_process
        grade = lambda chunk: [one(ref, ref, numeric=numeric) for ref in chunk]

def cpu_seconds(pids):  # this process and its workers, user + system
    total = time.process_time()
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total

grade(["1"] * 16)  # warm-up: imports, all workers of a batch and the spare started
time.sleep(2.0)  # ... and done importing
pids = workers()
cpu, start = cpu_seconds(pids), time.perf_counter()
correct = sum(sum(grade(answers[i : i + batch])) for i in range(0, len(answers), batch))
seconds = time.perf_counter() - start
assert workers() == pids, "a worker was replaced: its CPU time would be lost"
print(json.dumps({"correct": correct, "seconds": seconds, "cpu": cpu_seconds(pids) - cpu}))
"""


def references() -> dict[str, dict]:
    """GSM8K test final numbers (numeric answers) and MATH500 LaTeX answers."""
    sys.path.insert(0, str(REPO))
    from bgpo_lightning.tasks.math_answer import hashes_answer

    def rows(path: Path) -> list[dict]:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    gsm8k = [hashes_answer(row["answer"]) for row in rows(DATA / "gsm8k" / "test.jsonl")]
    math500 = [row["answer"] for row in rows(DATA / "math500" / "test.jsonl")]
    return {
        "gsm8k_test": {"answers": gsm8k, "numeric": True},
        "math500": {"answers": math500, "numeric": False},
    }


def old_package(rev: str, into: Path) -> Path:
    """The committed grader files in a bare ``bgpo_lightning.tasks`` package under ``into``."""
    tasks = into / "bgpo_lightning" / "tasks"
    tasks.mkdir(parents=True)
    (into / "bgpo_lightning" / "__init__.py").write_text("")
    (tasks / "__init__.py").write_text("")
    for name in OLD_FILES:
        source = subprocess.run(
            ["git", "show", f"{rev}:bgpo_lightning/tasks/{name}"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (tasks / name).write_text(source)
    return into


def run_child(mode: str, root: Path, refs_path: Path, batch: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(root), str(refs_path), str(batch)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"the {mode!r} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench(
    repeats: int, rev: str, out: Path, modes: Sequence[str] = MODES, batch: int = 64
) -> list[dict]:
    modes = list(modes)
    data = references()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old_root = old_package(rev, Path(tmp) / "old")
        roots = {mode: REPO for mode in MODES} | {"before": old_root}
        for dataset, refs in data.items():
            refs_path = Path(tmp) / f"{dataset}.json"
            refs_path.write_text(json.dumps(refs))
            runs: dict[str, list[dict]] = {mode: [] for mode in modes}
            for r in range(repeats):  # modes take turns, in a rotating order, so that load
                for mode in modes[r % len(modes) :] + modes[: r % len(modes)]:  # hits them alike
                    result = run_child(mode, roots[mode], refs_path, batch)
                    runs[mode].append(result)
                    n = len(refs["answers"])
                    print(
                        f"{dataset:10s} {mode:16s} {n / result['seconds']:7.1f} answers/s,"
                        f" {n / result['cpu']:7.1f} per CPU-s ({result['correct']}/{n} correct)",
                        flush=True,
                    )
            for mode in modes:
                seconds = statistics.median(r["seconds"] for r in runs[mode])
                cpu = statistics.median(r["cpu"] for r in runs[mode])
                rows.append(
                    {
                        "dataset": dataset,
                        "mode": mode,
                        "answers": len(refs["answers"]),
                        "correct": min(r["correct"] for r in runs[mode]),
                        "median_seconds": round(seconds, 3),
                        "answers_per_s": round(len(refs["answers"]) / seconds, 1),
                        "median_cpu_seconds": round(cpu, 3),
                        "answers_per_cpu_s": round(len(refs["answers"]) / cpu, 1),
                        "repeats": repeats,
                        "batch": batch if mode == "after" else 1,
                        "cpus": os.cpu_count(),
                        "load_average": round(os.getloadavg()[0], 2),
                        "python": platform.python_version(),
                    }
                )
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def table(rows: list[dict]) -> str:
    """A Markdown table: per dataset and grader, answers per second of wall time and of CPU
    time (this process and its workers: less sensitive to other jobs), and after / before."""
    lines = [
        "| references | measure | " + " | ".join(MODES) + " | after / before |",
        "|---|---|" + "---|" * len(MODES) + "---|",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = {r["mode"]: r for r in rows if r["dataset"] == dataset}
        for key, unit in (("answers_per_s", "answers/s"), ("answers_per_cpu_s", "answers/CPU-s")):
            cells = [f"{mine[m][key]:.1f}" if m in mine else "-" for m in MODES]
            change = "-"
            if "after" in mine and "before" in mine:
                change = f"{mine['after'][key] / mine['before'][key] - 1:+.0%}"
            lines.append(f"| {dataset} | {unit} | " + " | ".join(cells) + f" | {change} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the three graders")
    parser.add_argument("--rev", default="HEAD", help="git revision of the 'before' grader")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_math_grader"))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--batch", type=int, default=64, help="answers per are_equivalent call")
    args = parser.parse_args(argv)
    rows = bench(args.repeats, args.rev, args.out, args.modes, args.batch)
    print(table(rows))
    print(f"cpus={os.cpu_count()} load average={os.getloadavg()}")
    print(f"wrote {args.out / 'results.csv'}")


if __name__ == "__main__":
    main()
