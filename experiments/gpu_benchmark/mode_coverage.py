"""Which rollout-mode cells of issue 11's benchmark matrix are measured, and by which run.

The matrix is every mode (exact, prefix, dual, threshold0.9, threshold0.95), eager and
compiled, at the 1b and 8b shapes with 16 and 64 rows. Its cells were timed over many device
calls, so this collects them from the runs' printed logs into one table:

    python -m experiments.gpu_benchmark.mode_coverage NEW_LOG... \\
        --before-compile-fixes OLDEST_LOG... --before-cache-memory-fix OLDER_LOG... \\
        --out docs/benchmarks/mode_coverage.md

A cell holds the speed-up over the eager exact sampler of the same run, the rollout's share of
a BGPO step (n_t = 16), and the number of the run, whose folder the legend names. A run that
timed no eager exact row (one whole exact rollout at 8b and 64 rows takes most of a device call)
gives its tokens/s and their ratio to the column's eager exact row from another run, named in
the cell. Where several
runs timed a cell, the log given last wins, so give logs oldest first (``--before-compile-fixes``
logs are read first, then ``--before-cache-memory-fix`` logs, then the others). Measured modes
outside the matrix (``dual+graph``, ``f32`` ...) follow the matrix's rows.

Fixes that changed compiled timings each touched a rule-given set of rows, so older runs keep
the rest:

- ``--before-compile-fixes`` runs predate ``bidirectional_sdpa`` (compiled forwards without a
  cache had taken SDPA's math path) and the two-step cache warm-up (with one step per block the
  cached step compiled inside the timed rollout). They also predate the memory fix below, so
  they count no compiled row at all, only their eager ones.
- ``--before-cache-memory-fix`` runs predate the compiled cache's memory fix (under compile the
  refresh keeps whole keys and values and the step gathers the context). It changed the code
  every compiled cached row ran, so these runs count every row but those.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from experiments.gpu_benchmark.modes_from_log import read_log, rebuild
from experiments.gpu_benchmark.report import cell
from experiments.sampler_modes import parse_mode

MATRIX_MODES = ("exact", "prefix", "dual", "threshold0.9", "threshold0.95")
COLUMNS = (("1b", 16), ("1b", 64), ("8b", 16), ("8b", 64))

Cell = tuple[str, bool]  # (mode, compiled)


# A run's era: which fixes it predates, oldest first.
BEFORE_COMPILE_FIXES, BEFORE_CACHE_MEMORY_FIX, CURRENT = range(3)
ERA_NOTES = {
    BEFORE_COMPILE_FIXES: " (before the compile fixes)",
    BEFORE_CACHE_MEMORY_FIX: " (before the cache memory fix)",
    CURRENT: "",
}


def still_valid(row: dict, era: int) -> bool:
    """Whether a row timed in ``era`` still describes the code (the module docstring's rules)."""
    if not row["compile"] or era == CURRENT:
        return True
    return era == BEFORE_CACHE_MEMORY_FIX and parse_mode(row["mode"]).cache == "none"


def measured_rows(log: Path, era: int, number: int) -> list[dict]:
    """The timed rows of one run, each with its shape, speed-up, step share and run number."""
    system, modes, likelihood = read_log(log)
    if "shape" not in system:
        raise ValueError(f"{log}: the system block names no shape")
    rows = []
    for row in rebuild(system, modes, likelihood):
        if row.get("status") != "ok" or not still_valid(row, era):
            continue
        row["shape"] = system["shape"]
        row["run"] = number
        rows.append(row)
    return rows


def collect(runs: list[tuple[Path, int]]) -> dict[tuple[Cell, tuple[str, int]], dict]:
    """Each (mode, compiled) x (shape, rows) cell's row from the last run that timed it."""
    cells = {}
    for number, (log, era) in enumerate(runs, 1):
        for row in measured_rows(log, era, number):
            cells[(row["mode"], bool(row["compile"])), (row["shape"], row["rows"])] = row
    return cells


def row_order(cells: dict) -> list[Cell]:
    """The matrix's modes, eager then compiled, followed by the other modes measured."""
    matrix = [(mode, compiled) for mode in MATRIX_MODES for compiled in (False, True)]
    others = sorted({mode_cell for mode_cell, _ in cells} - set(matrix))
    return matrix + others


def cell_text(row: dict | None, exact: dict | None = None) -> str:
    """``speed-up · step share [run]``. A run without an eager exact row has no speed-up of its
    own: its cell gives the tokens/s it measured and, where another run timed the column's
    eager exact sampler (``exact``), the ratio to that run's, naming it, since a ratio across
    two runs (two machines) is weaker than one measured side by side."""
    if row is None:
        return "–"
    speedup, share = row["speedup_vs_exact"], row["rollout_fraction_of_step"]
    if not math.isnan(speedup):
        speedup_text = f"{speedup:.2f}x"
    elif exact is None:
        speedup_text = f"no exact row, {row['tok_s']:.0f} tok/s"
    else:
        ratio = row["tok_s"] / exact["tok_s"]
        speedup_text = f"{row['tok_s']:.0f} tok/s, {ratio:.2f}x run {exact['run']}'s exact"
    return f"{speedup_text} · {cell(share, 2)} [{row['run']}]"


def table(cells: dict, runs: list[tuple[Path, int]]) -> str:
    """A markdown table of the cells, the legend of its run numbers, and a list of the matrix
    cells no run timed."""
    head = " | ".join(f"{shape}, {rows} rows" for shape, rows in COLUMNS)
    lines = [f"| mode | compile | {head} |", "|---|---|" + "---|" * len(COLUMNS)]
    missing = []
    exacts = [cells.get((("exact", False), column)) for column in COLUMNS]  # the same each row
    for mode, compiled in row_order(cells):
        found = [cells.get(((mode, compiled), column)) for column in COLUMNS]
        texts = " | ".join(map(cell_text, found, exacts))
        lines.append(f"| {mode} | {'yes' if compiled else 'no'} | {texts} |")
        if mode in MATRIX_MODES:
            missing += [
                f"{mode} {'compiled' if compiled else 'eager'} at {shape}, {rows} rows"
                for (shape, rows), row in zip(COLUMNS, found, strict=True)
                if row is None
            ]
    lines += [
        "",
        "Cells: speed-up over the same run's eager exact sampler · rollout / BGPO step "
        "(n_t = 16) [run]. A run that timed no eager exact row gives its tokens/s and their "
        "ratio to the eager exact row of the run named (a ratio across two device calls). "
        "Runs:",
        "",
    ]
    folders = [log.parent for log, _ in runs]
    root = Path(os.path.commonpath([folder.parent for folder in folders]))
    lines += [
        f"{number}. `{folder.relative_to(root)}`{ERA_NOTES[era]}"
        for number, (folder, (_, era)) in enumerate(zip(folders, runs, strict=True), 1)
    ]
    cell_count = 2 * len(MATRIX_MODES) * len(COLUMNS)
    lines += ["", f"Matrix cells not timed: {len(missing)} of {cell_count}."]
    lines += [f"- {text}" for text in missing]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("logs", type=Path, nargs="+", help="gpu_benchmark logs, oldest first")
    cli.add_argument(
        "--before-compile-fixes",
        type=Path,
        nargs="*",
        default=[],
        help="logs timed before bidirectional_sdpa and the two-step cache warm-up (read first)",
    )
    cli.add_argument(
        "--before-cache-memory-fix",
        type=Path,
        nargs="*",
        default=[],
        help="logs timed before the compiled cache's memory fix (read after the above)",
    )
    cli.add_argument("--out", type=Path, help="also write the table here")
    args = cli.parse_args(argv)
    runs = [(log, BEFORE_COMPILE_FIXES) for log in args.before_compile_fixes]
    runs += [(log, BEFORE_CACHE_MEMORY_FIX) for log in args.before_cache_memory_fix]
    runs += [(log, CURRENT) for log in args.logs]
    try:
        text = table(collect(runs), runs)
    except FileNotFoundError as error:
        raise SystemExit(f"{error.filename}: no such log") from error
    except ValueError as error:
        raise SystemExit(str(error)) from error
    if args.out:
        args.out.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
