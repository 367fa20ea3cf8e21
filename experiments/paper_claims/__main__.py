"""The whole small-scale study: data, warm starts, probe, every run, then the report.

    python -m experiments.paper_claims --datasets ../shared/datasets --concurrency 12

It runs what is not done yet (see ``schedule``), so the same command continues a study cut
off by ``--budget-s``. ``--no-report`` leaves ``docs/`` alone (e.g. on a lent GPU machine;
run ``python -m experiments.paper_claims.report`` where the results are collected).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

from experiments.paper_claims import plan
from experiments.paper_claims.entry import CONFIGS, ROOT
from experiments.paper_claims.prepare import data_dir, prepare, tokenizer_dir
from experiments.paper_claims.run_one import EVAL_EVERY
from experiments.paper_claims.schedule import Scheduler


def system_info(task: str, concurrency: int) -> dict:
    import torch
    import yaml

    config = CONFIGS / f"{task}_rl.yaml"
    settings = yaml.safe_load(config.read_text())
    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name(0) if cuda else f"CPU ({platform.processor()})",
        "torch": torch.__version__,
        "concurrent_runs": concurrency,
        # Processes share the GPU through MPS when its daemon's pipe is set (see the README).
        "mps": bool(os.environ.get("CUDA_MPS_PIPE_DIRECTORY")),
        "rl_config": str(config),
        "rollout_batches": settings["trainer"]["limit_train_batches"],
        "prompts_per_batch": settings["data"]["batch_size"],
        "group_size": settings["model"]["init_args"]["group_size"],
        "eval_every": EVAL_EVERY,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    p.add_argument("--root", type=Path, default=ROOT)
    p.add_argument("--tasks", nargs="+", choices=plan.TASKS, default=list(plan.TASKS))
    p.add_argument("--concurrency", type=int, default=8, help="runs at once")
    p.add_argument("--budget-s", type=float, default=24 * 3600.0, help="stop after this long")
    p.add_argument(
        "--expected-run-s",
        type=float,
        default=480.0,
        help="a job's duration until one of its kind has finished: none starts that would "
        "not end within the budget (runs took 360-470 s with 14 sharing an H200)",
    )
    p.add_argument(
        "--resumable",
        action="store_true",
        help="start runs that may not finish in the budget: they resume from their "
        "checkpoints (in $PAPER_CLAIMS_SCRATCH when set) when the study is started again",
    )
    p.add_argument("--no-report", action="store_true")
    args = p.parse_args(argv)
    if (
        not all(data_dir(args.root, t).is_dir() for t in args.tasks)
        or not tokenizer_dir(args.root).is_dir()
    ):
        prepare(args.datasets, args.root)
    for task in args.tasks:
        (args.root / task).mkdir(parents=True, exist_ok=True)
        info = system_info(task, args.concurrency)
        (args.root / task / "system.json").write_text(json.dumps(info, indent=1))
    scheduler = Scheduler(
        args.root,
        args.tasks,
        args.concurrency,
        args.budget_s,
        default_s=args.expected_run_s,
        resumable=args.resumable,
    )
    outcome = scheduler.run()
    print(json.dumps(outcome, indent=1), flush=True)
    if not args.no_report:
        from experiments.paper_claims import report

        report.main(["--root", str(args.root)])
    return outcome


if __name__ == "__main__":
    main()
