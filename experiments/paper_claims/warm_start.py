"""The warm start of one task: SFT until validation accuracy reaches the config's threshold.

The exported weights are rounded to bfloat16 (half the bytes to carry between machines);
every RL run then starts from exactly these weights, upcast to float32, and the accuracy
recorded in ``warmstart.json`` is the rounded model's.

    python -m experiments.paper_claims.warm_start --task sudoku
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch

from experiments.paper_claims.entry import CONFIGS, ROOT, task_arguments, write_summary
from experiments.paper_claims.prepare import data_args, tokenizer_dir


def warm_start_dir(root: Path, task: str) -> Path:
    return root / task / "warmstart"


def weights_sha256(directory: Path) -> str:
    """SHA-256 of the warm start's weight files: runs record it, so that results from
    different warm starts (e.g. one trained again elsewhere) are never mixed unnoticed."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def train_warm_start(task: str, root: Path = ROOT, extra: list[str] | None = None) -> dict:
    """Trains, rounds and exports the warm start; returns (and writes) its summary."""
    from bgpo_lightning.cli import build_cli

    start = time.perf_counter()
    config = CONFIGS / f"{task}_sft.yaml"
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
        *(extra or []),
    ]
    cli = build_cli(args, run=False)
    trainer, module = cli.trainer, cli.model
    trainer.fit(module, cli.datamodule)
    val_accuracy = float(trainer.callback_metrics.get("val/accuracy", float("nan")))
    with torch.no_grad():
        for p in module.policy.parameters():
            p.copy_(p.to(torch.bfloat16).to(p.dtype))
    trainer.test(module, cli.datamodule, verbose=False)
    target = warm_start_dir(root, task)
    module.policy.model.to(torch.bfloat16).save_pretrained(target)
    module.tokenizer.save_pretrained(target)
    summary = {
        "task": task,
        "params": sum(p.numel() for p in module.policy.parameters()),
        "sft_steps": trainer.global_step,
        "val_accuracy": val_accuracy,
        "test_accuracy": float(module.test_scores.mean()),
        "weights_sha256": weights_sha256(target),
        "seconds": time.perf_counter() - start,
        "config": str(config),
        "command": f"python -m experiments.paper_claims.warm_start --task {task}",
    }
    return write_summary(root / task / "warmstart.json", summary)


def main(argv: list[str] | None = None) -> None:
    task, root, overrides = task_arguments(__doc__, argv)
    train_warm_start(task, root, overrides)


if __name__ == "__main__":
    main()
