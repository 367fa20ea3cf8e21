"""The warm start of one task: SFT until validation accuracy reaches the config's threshold.

The exported weights are rounded to bfloat16 (half the bytes to carry between machines);
every RL run then starts from exactly these weights, upcast to float32, and the accuracy
recorded in ``warmstart.json`` is the rounded model's.

    python -m experiments.paper_claims.warm_start --task sudoku [--budget-s SECONDS]

With ``--budget-s`` the SFT may end before the threshold or the config's ``max_steps``: the
weights are then exported as a part, ``warmstart_progress.json`` records it, and the same
command continues from those weights (fresh optimizer state, next data seed) until the
threshold or the step total is reached. Lent GPU machines hold for minutes at a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import torch

from experiments.paper_claims.entry import CONFIGS, ROOT, task_arguments, write_summary
from experiments.paper_claims.prepare import data_args, tokenizer_dir


def warm_start_dir(root: Path, task: str) -> Path:
    return root / task / "warmstart"


def progress_file(root: Path, task: str) -> Path:
    return root / task / "warmstart_progress.json"


def warm_start_record(root: Path, task: str) -> Path:
    """The file that describes the weights in ``warm_start_dir``: the finished summary, or
    the progress of an unfinished warm start."""
    done = root / task / "warmstart.json"
    return done if done.is_file() else progress_file(root, task)


def weights_sha256(directory: Path) -> str:
    """SHA-256 of the warm start's weight files: runs record it, so that results from
    different warm starts (e.g. one trained again elsewhere) are never mixed unnoticed."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _duration(seconds: float) -> str:
    """``seconds`` as the Trainer's ``max_time`` string, DD:HH:MM:SS."""
    s = max(int(seconds), 0)
    return f"{s // 86400:02d}:{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _threshold(trainer) -> float | None:
    from lightning.pytorch.callbacks import EarlyStopping

    found = [c.stopping_threshold for c in trainer.callbacks if isinstance(c, EarlyStopping)]
    return found[0] if found else None


def train_warm_start(
    task: str, root: Path = ROOT, extra: list[str] | None = None, budget_s: float | None = None
) -> dict:
    """Trains (or continues), rounds and exports the warm start; returns its summary, which
    is written to ``warmstart.json`` once finished and to the progress file before that."""
    from bgpo_lightning.cli import build_cli

    start = time.perf_counter()
    config = CONFIGS / f"{task}_sft.yaml"
    target = warm_start_dir(root, task)
    progress = progress_file(root, task)
    so_far = json.loads(progress.read_text()) if progress.is_file() else {"parts": []}
    parts, done_steps = so_far["parts"], so_far.get("sft_steps", 0)
    args = [
        "--config",
        str(config),
        "--trainer.default_root_dir",
        str(root / task / "warmstart_sft"),
        "--trainer.logger.init_args.save_dir",
        str(root / task),
        "--model.init_args.policy.tokenizer_path",
        str(tokenizer_dir(root)),
        *data_args(root, task),
    ]
    args += extra or []
    if parts:  # continue from the last part's weights, on another order of the data
        args += ["--model.init_args.policy.path", str(target)]
        args += ["--seed_everything", str(len(parts)), "--data.seed", str(len(parts))]
        args += ["--trainer.max_steps", str(so_far["max_steps"] - done_steps)]
    if budget_s is not None:
        args += ["--trainer.max_time", _duration(budget_s)]
    cli = build_cli(args, run=False)
    trainer, module = cli.trainer, cli.model
    total_steps = so_far.get("max_steps", trainer.max_steps)
    trainer.fit(module, cli.datamodule)
    measured = trainer.callback_metrics.get("val/accuracy")  # none if no validation ran
    val_accuracy = None if measured is None else float(measured)
    threshold = _threshold(trainer)
    reached = None not in (threshold, val_accuracy) and val_accuracy >= threshold
    steps = done_steps + trainer.global_step
    finished = reached or steps >= total_steps
    with torch.no_grad():
        for p in module.policy.parameters():
            p.copy_(p.to(torch.bfloat16).to(p.dtype))
    if finished:  # the rounded weights' accuracy, before they are stored in bfloat16
        trainer.test(module, cli.datamodule, verbose=False)
    module.policy.model.to(torch.bfloat16).save_pretrained(target)
    module.tokenizer.save_pretrained(target)
    seconds = time.perf_counter() - start
    parts = [*parts, {"steps": trainer.global_step, "val_accuracy": val_accuracy,
                      "seconds": seconds}]  # fmt: skip
    summary = {
        "task": task,
        "params": sum(p.numel() for p in module.policy.parameters()),
        "sft_steps": steps,
        "max_steps": total_steps,
        "val_accuracy": val_accuracy,
        "threshold": threshold,
        "weights_sha256": weights_sha256(target),
        "seconds": sum(p["seconds"] for p in parts),
        "parts": parts,
        "config": str(config),
        "command": f"python -m experiments.paper_claims.warm_start --task {task}",
    }
    if not finished:
        return write_summary(progress, summary)
    summary["test_accuracy"] = float(module.test_scores.mean())
    summary["stopped"] = "threshold" if reached else "max_steps"
    progress.unlink(missing_ok=True)
    return write_summary(root / task / "warmstart.json", summary)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--budget-s", type=float, default=None)
    known, rest = p.parse_known_args(argv)
    task, root, overrides = task_arguments(__doc__, rest)
    train_warm_start(task, root, overrides, known.budget_s)


if __name__ == "__main__":
    main()
