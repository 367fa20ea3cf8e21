"""What the study's per-task commands share: their arguments and their JSON summaries."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.paper_claims.plan import TASKS

ROOT = Path("runs/paper_claims")
CONFIGS = Path("experiments/configs/paper_claims")
#: Tells a run how many runs shared the GPU with it, for its result's machine record.
CONCURRENCY_VARIABLE = "PAPER_CLAIMS_CONCURRENT_RUNS"


def task_arguments(description: str, argv: list[str] | None) -> tuple[str, Path, list[str]]:
    """``--task``, ``--root`` and the ``--set KEY=VALUE`` overrides as CLI arguments; sets
    up the quiet output of the project's entry points."""
    from experiments.embedded_default import as_cli_args
    from experiments.quiet import quiet_entry_point

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--task", choices=TASKS, required=True)
    p.add_argument("--root", type=Path, default=ROOT)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    quiet_entry_point()
    return args.task, args.root, as_cli_args(args.set)


def write_summary(path: Path, summary: dict) -> dict:
    """Writes ``summary`` as the step's done file and prints it on one line.

    The scheduler takes the file's existence as the step being done and the next steps read
    it, so it is written beside and renamed into place: it appears whole or not at all.
    """
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(summary, indent=1))
    partial.replace(path)
    print(json.dumps(summary), flush=True)
    return summary
