"""``rollout_modes.csv`` and ``rollout_modes.md`` rebuilt from a benchmark run's printed output.

The benchmark now rewrites its table after every finished row. Runs from before that, stopped
by their time limit (a compile that outlasted the device call), left no CSV, but they printed
each mode's row as soon as it was measured, after the run's system block and any likelihood
rows. This rebuilds the table from such a log:

    python -m experiments.gpu_benchmark.modes_from_log docs/benchmarks/mode_matrix_8b/log.txt \\
        --out docs/benchmarks/mode_matrix_8b

Speed-ups are against the eager exact sampler's printed row at the same rows. The BGPO step
share uses the likelihood phase the same run printed (n_t = 16), or else the ``likelihood_s``
the run was given. The printed rows carry no tokens, so "tokens ≠ exact" stays empty.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from experiments.gpu_benchmark.mode_rows import add_step_fraction, is_exact_baseline, speedup_over
from experiments.gpu_benchmark.report import write_mode_files


def read_log(path: Path) -> tuple[dict, list[dict], list[dict]]:
    """The run's system block, its printed mode rows and its printed likelihood rows."""
    text = path.read_text()
    start = text.find("{")
    if start < 0:
        raise ValueError(f"{path}: no system block (a JSON object) found")
    system, _ = json.JSONDecoder().raw_decode(text, start)
    modes, likelihood = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith('{"mode"') or line.startswith('{"case"'):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: unreadable row ({error})") from error
            (modes if "mode" in row else likelihood).append(row)
    return system, modes, likelihood


def likelihood_seconds(system: dict, likelihood: list[dict]) -> float:
    """BGPO's likelihood phase at n_t = 16 as printed, else the run's ``--likelihood-s``."""
    for row in likelihood:
        if row.get("case") == "bgpo" and row.get("n_t") == 16 and row.get("status") == "ok":
            return float(row["likelihood_s"])
    given = system.get("args", {}).get("likelihood_s", "None")
    return math.nan if given == "None" else float(given)


def rebuild(system: dict, modes: list[dict], likelihood: list[dict]) -> list[dict]:
    """The printed mode rows with the columns the benchmark adds after measuring them."""
    args = system.get("args", {})
    likelihood_rows = int(args.get("num_prompts", 2)) * int(args.get("group_size", 8))
    likelihood_s = likelihood_seconds(system, likelihood)
    exact = {}
    for row in modes:
        if row["status"] == "ok" and is_exact_baseline(row):
            exact.setdefault(row["rows"], row)
    rebuilt = []
    for printed in modes:
        row = dict(printed)
        row["speedup_vs_exact"] = speedup_over(row, exact.get(row["rows"]))
        row["tokens_differ_vs_exact"] = math.nan
        add_step_fraction(row, likelihood_s, likelihood_rows)
        rebuilt.append(row)
    return rebuilt


def main(argv: list[str] | None = None) -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("log", type=Path, help="what a gpu_benchmark run printed")
    cli.add_argument("--out", type=Path, required=True, help="folder for the CSV and table")
    args = cli.parse_args(argv)
    system, modes, likelihood = read_log(args.log)
    if not modes:
        raise SystemExit(f"{args.log}: no mode rows printed")
    rows = rebuild(system, modes, likelihood)
    args.out.mkdir(parents=True, exist_ok=True)
    print(write_mode_files(rows, args.out, int(system.get("args", {}).get("group_size", 8))))


if __name__ == "__main__":
    main()
