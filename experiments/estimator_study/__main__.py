"""``python -m experiments.estimator_study``: measure every estimator, write docs/estimators.md.

Defaults: the cached Sudoku SFT warm start (trained first when missing), 8 prompts x 8
responses at temperature 1, budgets 1 2 3 4 6 8 16, R = 16, golden = stratified x 1024, exact
ELBO on 10-token responses, 2 torch threads. About ten minutes on a 2-core CPU. Shrink it with
``--repeats``, ``--budgets``, ``--golden-budget``, ``--estimators``, ``--prompts``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from bgpo_lightning.modules import DiffusionRLModule
from bgpo_lightning.modules.rollout import Rollout
from bgpo_lightning.tasks.datamodule import split_seed
from experiments.estimator_study.batch import (
    build_module,
    ensure_warm_start,
    fixed_sampler,
    rl_settings,
    sample_rollout,
    study_task,
)
from experiments.estimator_study.doc import write_outputs
from experiments.estimator_study.exact import exact_elbo, masked_log_prob_table
from experiments.estimator_study.grid import EstimatorSpec, select_specs
from experiments.estimator_study.measure import ExactBatch, StudySettings, measure_all

DOC = Path("docs/estimators.md")
FILES = Path("docs/estimators")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.estimator_study", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--budgets", type=int, nargs="+", default=[1, 2, 3, 4, 6, 8, 16])
    parser.add_argument("--repeats", type=int, default=16, help="R, mask draws per cell")
    parser.add_argument("--golden-budget", type=int, default=1024)
    parser.add_argument("--estimators", nargs="+", default=None, help="labels (default: all)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--exact-length", type=int, default=10, help="tokens of the exact batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--files", type=Path, default=FILES, help="CSV, figure and run.json")
    options = parser.parse_args(argv)
    if options.repeats < 2 or min(options.budgets) < 1 or options.golden_budget < 1:
        parser.error("need --repeats >= 2 and budgets >= 1")
    if not 1 <= options.exact_length <= 12:
        parser.error("--exact-length must be 1..12 (2^L forwards per response)")
    return options


def machine() -> dict:
    """The CPU model (from /proc/cpuinfo where there is one), its cores and torch's threads."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        if names:
            cpu = names[0].split(":", 1)[1].strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        # Other work on the machine slows the run: the load average says how much there was.
        "load_average_at_start": os.getloadavg(),
    }


def distinct_rows(rollout: Rollout) -> int:
    """How many (prompt, response) pairs of the batch differ (ties share their forwards)."""
    rows = torch.cat([rollout.prompt_ids, rollout.prompt_mask, rollout.responses], dim=1)
    return int(rows.unique(dim=0).shape[0])


def describe_batch(rollout: Rollout, group_size: int, sampler, seed: int) -> dict:
    """What the doc says about a rollout batch."""
    rewards = rollout.rewards.view(-1, group_size)
    return {
        "prompts": rewards.shape[0],
        "group_size": group_size,
        "responses": rollout.num_responses,
        "response_length": rollout.response_length,
        "temperature": sampler.temperature,
        "seed": seed,
        "mean_reward": rollout.rewards.mean().item(),
        "tied_groups": int((rewards == rewards[:, :1]).all(dim=1).sum()),
        "distinct": distinct_rows(rollout),
        "nonzero_advantages": int((rollout.advantages.abs() > 0.01).sum()),
    }


def run_study(
    module: DiffusionRLModule,
    rollout: Rollout,
    exact_rollout: Rollout,
    specs: list[EstimatorSpec],
    settings: StudySettings,
    info: dict,
    doc: Path,
    files: Path,
    started: float,
) -> list[dict]:
    """Exact ELBO of the short batch, every cell, then the page and its files."""
    start = time.perf_counter()
    table = masked_log_prob_table(module.policy, exact_rollout, module.policy.mask_token_id)
    exact = ExactBatch(exact_rollout, table, exact_elbo(table))
    short = info["exact_batch"]
    short.update(masks=table.shape[1] - 1, seconds=time.perf_counter() - start)
    short["forwards"] = short["distinct"] * table.shape[1]  # the empty mask is run too
    print(f"exact ELBO of the short batch: {info['exact_batch']['seconds']:.0f} s", flush=True)
    rows = measure_all(module, rollout, exact, specs, settings, lambda s: print(s, flush=True))
    info["settings"] = {
        **asdict(settings),
        "estimators": ", ".join(
            f"`{s.label}` ({s.name}{', ' + str(s.settings) if s.settings else ''})" for s in specs
        ),
    }
    info["num_params"] = sum(p.numel() for p in module.policy.parameters() if p.requires_grad)
    info["seconds"] = time.perf_counter() - started
    info["machine"]["load_average_at_end"] = os.getloadavg()
    write_outputs(rows, info, doc, files)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    """Builds the batches, runs the study, writes the page; returns the rows."""
    started = time.perf_counter()
    options = parse_args(argv)
    torch.set_num_threads(options.threads)
    host, date = machine(), datetime.datetime.now(datetime.timezone.utc)
    specs = select_specs(options.estimators)
    warm = ensure_warm_start()
    rl = rl_settings()
    task = study_task(rl)
    examples = task.generate(options.prompts, seed=split_seed(options.seed, "estimator_study"))
    n = options.prompts * options.group_size
    module = build_module(warm.path, n, options.group_size)
    samplers = (fixed_sampler(rl), fixed_sampler(rl, options.exact_length))
    seeds = (options.seed, options.seed + 1)
    rollout, short = (
        sample_rollout(module, task, examples, options.group_size, sampler, seed)
        for sampler, seed in zip(samplers, seeds, strict=True)
    )
    command = " ".join(
        ["python -m experiments.estimator_study", *map(shlex.quote, argv or sys.argv[1:])]
    )
    info = {
        "command": command,
        "machine": host,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": date.strftime("%Y-%m-%d %H:%M UTC"),
        "policy": {
            "description": f"the SFT warm start `{warm.path}`"
            + (" (trained by this run)" if warm.built else "")
            + (
                ""
                if warm.matches_config
                else ", built from an earlier sudoku_sft.yaml (its stamp differs)"
            ),
            **{k: str(v) for k, v in asdict(warm).items()},
        },
        "main_batch": describe_batch(rollout, options.group_size, samplers[0], seeds[0]),
        "exact_batch": describe_batch(short, options.group_size, samplers[1], seeds[1]),
    }
    settings = StudySettings(
        tuple(options.budgets), options.repeats, options.golden_budget, options.seed
    )
    rows = run_study(
        module, rollout, short, specs, settings, info, options.doc, options.files, started
    )
    print(f"wrote {options.doc} and {options.files}/ in {info['seconds']:.0f} s")
    return rows


if __name__ == "__main__":
    main()
