"""Threshold decoding's rollout time at a benchmark shape, from the forwards it saves on a
trained model.

On the benchmark's random weights no confidence reaches a threshold, so a threshold mode runs
the whole fixed schedule: its timed row is the cost of that many steps, the per-step host
synchronisation included. On a trained model the same mode stops each block early and runs a
fraction of the forwards (``forward_ratio`` in ``experiments.sampler_accuracy``'s
``results.csv``). Every step costs the same at a given shape, so the estimate is the timed
seconds times that fraction:

    python -m experiments.gpu_benchmark.threshold_estimate \\
        docs/benchmarks/accurate_modes_1b/rollout_modes.csv \\
        --accuracy docs/sampler_accuracy_study_gpu/results.csv \\
        docs/sampler_accuracy_countdown_gpu/results.csv \\
        --out docs/benchmarks/accurate_modes_1b/threshold_estimate.md

The fraction carries over only as far as the trained model's sampler resembles the
benchmark's. The study's fixed schedule commits two tokens per step, as the benchmark's math
setting does, but over blocks of 16 (8 steps each) instead of 32 (16 steps each), and the
fraction counts greedy and temperature batches together.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path

from experiments.gpu_benchmark.mode_rows import is_exact_baseline
from experiments.gpu_benchmark.report import cell
from experiments.sampler_modes import parse_mode


@dataclass(frozen=True)
class Estimate:
    """One threshold mode of the benchmark with the forward fraction of one trained model."""

    mode: str
    compiled: bool
    rows: int
    timed_s: float  # the benchmark's row: the whole fixed schedule
    source: str  # the accuracy check the fraction comes from
    forward_ratio: float
    accuracy_diff: float  # greedy accuracy, mode - exact, as a fraction
    reward_diff: float  # mean rollout reward, mode - exact
    exact_s: float  # the eager exact sampler at the same rows
    likelihood_s: float  # BGPO's likelihood phase (n_t = 16) at the same rows

    @property
    def seconds(self) -> float:
        return self.timed_s * self.forward_ratio

    @property
    def speedup(self) -> float:
        return self.exact_s / self.seconds

    @property
    def fraction_of_step(self) -> float:
        return self.seconds / (self.seconds + self.likelihood_s)


def _read(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def estimates(benchmark_csv: Path, accuracy_csvs: list[Path]) -> list[Estimate]:
    """Every (timed threshold row, accuracy row of the same mode) pair.

    Raises:
        ValueError: A threshold row ran fewer forwards than its steps (its threshold fired,
            so scaling it again would count the saving twice), or a row set has no eager exact
            row to compare with.
    """
    timed = [r for r in _read(benchmark_csv) if r["status"] == "ok"]
    exact_s = {
        r["rows"]: float(r["seconds"])
        for r in timed
        if is_exact_baseline({**r, "compile": r["compile"] == "True"})
    }
    accuracy = {path: _read(path) for path in accuracy_csvs}
    out = []
    for row in timed:
        if parse_mode(row["mode"]).threshold is None:
            continue
        if int(row["forwards"]) != int(row["steps"]):
            raise ValueError(
                f"{benchmark_csv}: {row['mode']} ran {row['forwards']} forwards for "
                f"{row['steps']} steps; a fired threshold cannot be scaled again"
            )
        if row["rows"] not in exact_s:
            raise ValueError(f"{benchmark_csv}: no eager exact row at {row['rows']} rows")
        for path, checked in accuracy.items():
            for check in (c for c in checked if c["mode"] == row["mode"]):
                out.append(
                    Estimate(
                        mode=row["mode"],
                        compiled=row["compile"] == "True",
                        rows=int(row["rows"]),
                        timed_s=float(row["seconds"]),
                        source=f"{path.parent.name} ({check['split']})",
                        forward_ratio=float(check["forward_ratio"]),
                        accuracy_diff=float(check["accuracy_diff"]),
                        reward_diff=float(check["reward_diff"]),
                        exact_s=exact_s[row["rows"]],
                        likelihood_s=float(row["likelihood_s"]),
                    )
                )
    return out


def table(rows: list[Estimate]) -> str:
    """Markdown table of the estimates."""
    lines = [
        "| mode | compile | rows | timed s (fixed schedule) | forward fraction from | "
        "fraction | Δ acc vs exact (points) | Δ reward vs exact (points) | estimated s | "
        "speed-up vs eager exact | rollout / BGPO step |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in rows:
        lines.append(
            f"| {e.mode} | {'yes' if e.compiled else 'no'} | {e.rows} | {e.timed_s:.3f} | "
            f"{e.source} | {e.forward_ratio:.2f} | {100 * e.accuracy_diff:+.1f} | "
            f"{100 * e.reward_diff:+.1f} | {e.seconds:.3f} | {e.speedup:.2f} | "
            f"{cell(e.fraction_of_step, 2)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("benchmark_csv", type=Path, help="rollout_modes.csv of gpu_benchmark")
    cli.add_argument(
        "--accuracy", type=Path, nargs="+", required=True, help="sampler_accuracy results.csv"
    )
    cli.add_argument("--out", type=Path, help="also write the table here")
    args = cli.parse_args(argv)
    try:
        text = table(estimates(args.benchmark_csv, args.accuracy))
    except KeyError as error:
        cli.exit(2, f"error: a CSV lacks the column {error}\n")
    except (OSError, ValueError) as error:
        cli.exit(2, f"error: {error}\n")
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
