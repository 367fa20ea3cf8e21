"""Synthetic result files shared by the paper-claims tests: runs as the runner writes
them, and a whole study of both tasks."""

from __future__ import annotations

import json
import math

from experiments.paper_claims import plan, results

LR_LOW, LR_MID, LR_HIGH = plan.LEARNING_RATES


def write_run(
    root,
    task,
    method,
    lr,
    seed,
    *,
    final_test=0.4,
    final_val=None,
    curve=None,
    status="ok",
    warm=(0.30, 0.28),
    peak=2.0,
    step=1.0,
    grad_stats_csv=None,
):
    """A result.json as the runner writes it; returns the run folder."""
    final_val = final_test if final_val is None else final_val
    if curve is None:
        curve = [
            {"batch": 0, "val": warm[0], "test": warm[1]},
            {"batch": 10, "val": (warm[0] + final_val) / 2, "test": (warm[1] + final_test) / 2},
            {"batch": 20, "val": final_val, "test": final_test},
        ]
    key = plan.RunKey(task, method, lr, seed)
    folder = root / task / "runs" / key.name
    folder.mkdir(parents=True, exist_ok=True)
    result = {
        "task": task,
        "method": method,
        "label": results.method_label(method),
        "lr": lr,
        "seed": seed,
        "settings": {},
        "rollout_batches": 20,
        "status": status,
        "curve": curve,
        "train_reward": [0.3, 0.4],
        "peak_memory_gib": peak,
        "step_s": step,
        "rollout_s": step / 4,
        "likelihood_s": 3 * step / 4,
        "wall_s": 20 * step,
        "command": f"python -m experiments.paper_claims.run_one --task {task} --method {method} "
        f"--lr {lr:g} --seed {seed}",
        "grad_stats_csv": grad_stats_csv,
    }
    (folder / "result.json").write_text(json.dumps(result))
    return folder


def seeds_of(root, task, method, finals, lr=LR_MID, **kwargs):
    """Runs at ``lr``, one per final test accuracy, seeds 0, 1, ..."""
    for seed, final in enumerate(finals):
        write_run(root, task, method, lr, seed, final_test=final, **kwargs)


def loaded(root, task="sudoku"):
    """The task's runs and their chosen learning rates."""
    runs = results.load_runs(root, task)
    return runs, results.chosen_learning_rates(runs)


def full_study(root):
    """Every planned run of both tasks, BGPO ahead of the baselines and rising in n_t."""
    for task in plan.TASKS:
        for index, method in enumerate(plan.methods_for(task)):
            n_t = results.bgpo_n_t(method.key)
            base = 0.30 + 0.02 * math.log2(n_t) if n_t else 0.25 + 0.005 * index
            for lr in plan.LEARNING_RATES:
                bump = 0.01 if lr == LR_MID else 0.0
                write_run(root, task, method.key, lr, 0, final_test=base + bump, peak=2.0)
            for seed in plan.SEEDS[1:]:
                write_run(root, task, method.key, LR_MID, seed, final_test=base + 0.002 * seed)
        (root / task / "system.json").write_text(
            json.dumps({"device": "NVIDIA H200", "rollout_batches": 20, "group_size": 8})
        )
        (root / task / "warmstart.json").write_text(
            json.dumps({"params": 11_000_000, "sft_steps": 800, "test_accuracy": 0.28})
        )
