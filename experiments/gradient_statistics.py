"""Gradient noise and error against n_t on one rollout batch: a table, a figure and a CSV.

``python -m experiments.gradient_statistics`` takes the RL config (default: the embedded
Sudoku BGPO setup, with the cached SFT warm start ``runs/embedded_default/seed_0/warmstart`` when it
exists, else an untrained tiny model), samples one rollout batch and runs the
:class:`~bgpo_lightning.callbacks.gradient_statistics.GradientStatistics` callback on it for
BGPO and VRPO-OL: n_t in 1..32, R = 8 repeats, golden n_t = 256. The learning rate is set to 0,
so the one optimizer step the Trainer takes leaves the parameters where the rollout was
sampled: the measured gradient is exactly on-policy. Outputs in ``--out`` (default
``runs/gradient_statistics``): ``gradient_statistics.csv`` (replaced), ``.png`` and
TensorBoard events.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import torch

from bgpo_lightning.callbacks.gradient_report import format_table
from bgpo_lightning.callbacks.gradient_statistics import GradientStatistics
from bgpo_lightning.cli import build_cli

CONFIG = Path(__file__).parent / "configs" / "sudoku_bgpo.yaml"
WARM_START = Path("runs/embedded_default/seed_0/warmstart")
CALLBACK = "bgpo_lightning.callbacks.gradient_statistics.GradientStatistics"


def parse_args(args: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG), help="an RL config (LightningCLI YAML)")
    parser.add_argument(
        "--policy",
        default=str(WARM_START) if WARM_START.is_dir() else None,
        help="Hugging Face checkpoint directory (default: the warm start if cached)",
    )
    parser.add_argument("--out", default="runs/gradient_statistics")
    parser.add_argument("--objectives", nargs="+", default=["bgpo", "vrpo_ol"])
    parser.add_argument("--grid", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--golden", type=int, default=256)
    parser.add_argument("--prompts", type=int, default=8, help="prompts in the rollout batch")
    parser.add_argument("--group-size", type=int, default=8, help="responses per prompt")
    parser.add_argument("--param-names", nargs="+", default=None, help="glob patterns")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    return parser.parse_args(args)


def cli_args(options: argparse.Namespace) -> list[str]:
    """LightningCLI arguments: the config, one step at lr 0, the callback, logs in ``out``."""
    callback = {
        "class_path": CALLBACK,
        "init_args": {
            "every_n_steps": 1,
            "objectives": options.objectives,
            "num_mc_samples": options.grid,
            "repeats": options.repeats,
            "golden_num_mc_samples": options.golden,
            "param_names": options.param_names,
            "seed": options.seed,
        },
    }
    logger = {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": options.out, "name": "", "version": ""},
    }
    args = [
        "--config", options.config,
        "--seed_everything", str(options.seed),
        "--trainer.max_steps", "1",
        "--trainer.limit_val_batches", "0",
        "--trainer.enable_checkpointing", "false",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.accelerator", options.accelerator,
        "--trainer.default_root_dir", options.out,
        f"--trainer.logger={json.dumps(logger)}",
        f"--trainer.callbacks=[{json.dumps(callback)}]",
        "--model.init_args.optim.lr", "0",
        "--model.init_args.group_size", str(options.group_size),
        "--model.init_args.seed", str(options.seed),
        "--data.batch_size", str(options.prompts),
    ]  # fmt: skip
    if options.policy:
        args += ["--model.init_args.policy.path", options.policy]
    return args


def main(args: list[str] | None = None) -> list[dict]:
    """Runs the measurement; prints and returns the rows."""
    options = parse_args(args)
    csv_path = Path(options.out) / "gradient_statistics.csv"
    csv_path.unlink(missing_ok=True)  # this run's table only
    if options.threads:
        torch.set_num_threads(options.threads)
    with warnings.catch_warnings():
        # Our own argv is not LightningCLI's: its warning about both being given is moot here.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = build_cli(cli_args(options), run=False)
    (stats,) = [c for c in cli.trainer.callbacks if isinstance(c, GradientStatistics)]
    cli.trainer.fit(cli.model, cli.datamodule)
    if not stats.last_rows:
        sys.exit("no statistics: every advantage of the batch was 0 (try more --prompts)")
    metrics = cli.trainer.callback_metrics
    print(
        f"policy: {options.policy or 'untrained tiny model'}; {options.prompts} prompts x "
        f"{options.group_size} responses, reward {float(metrics['train/reward']):.3f}, "
        f"advantage std {float(metrics['train/advantage_std']):.3f}; R = {options.repeats}, "
        f"golden n_t = {options.golden}, {stats.last_rows[0]['num_params']} parameters"
    )
    print(format_table(stats.last_rows))
    print(f"wrote {csv_path} and {csv_path.with_suffix('.png')}")
    return stats.last_rows


if __name__ == "__main__":
    main()
