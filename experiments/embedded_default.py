"""The embedded default: SFT warm start, then BGPO, on generated Sudoku 4x4, on a CPU.

1. Build a LLaDA-shaped tiny model and a character tokenizer locally (no hub).
2. Warm-start it with masked-diffusion SFT (``configs/sudoku_sft.yaml``); the result is
   cached under ``runs/embedded_default/warmstart`` and reused while the config is unchanged.
3. Measure held-out greedy accuracy (cell accuracy, as d1 reports Sudoku) on the test split.
4. Train with BGPO (``configs/sudoku_bgpo.yaml``), measure again, print both with standard
   errors, write ``results.json``, TensorBoard logs and a Hugging Face checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from bgpo_lightning.callbacks import HFExport
from bgpo_lightning.cli import build_cli

CONFIGS = Path(__file__).parent / "configs"
ROOT = Path("runs/embedded_default")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def _fingerprint(config: Path) -> str:
    return hashlib.sha256(config.read_bytes()).hexdigest()[:16]


def warm_start(root: Path = ROOT) -> Path:
    """The SFT checkpoint directory, trained now unless a cached one matches the config."""
    config = CONFIGS / "sudoku_sft.yaml"
    target = root / "warmstart"
    stamp = target / "sft_config.sha256"
    if stamp.is_file() and stamp.read_text() == _fingerprint(config):
        print(f"[warm start] reusing cached SFT checkpoint {target}", flush=True)
        return target
    print("[warm start] masked-diffusion SFT of the tiny model ...", flush=True)
    cli = build_cli(
        [
            "--config",
            str(config),
            *QUIET,
            "--trainer.logger.init_args.save_dir",
            str(root),
            "--trainer.default_root_dir",
            str(root),
        ],
        run=False,
    )
    for callback in cli.trainer.callbacks:
        if isinstance(callback, HFExport):
            callback.dirpath = str(target)
    cli.trainer.fit(cli.model, cli.datamodule)
    stamp.write_text(_fingerprint(config))
    return target


def _test_accuracy(cli) -> tuple[float, float]:
    (metrics,) = cli.trainer.test(cli.model, cli.datamodule, verbose=False)
    return metrics["test/accuracy"], metrics["test/accuracy_se"]


def run_embedded_default(root: Path = ROOT, extra_args: list[str] | None = None) -> dict:
    """Runs the whole pipeline; returns (and writes) the before/after accuracies."""
    start = time.perf_counter()
    checkpoint = warm_start(root)
    cli = build_cli(
        [
            "--config",
            str(CONFIGS / "sudoku_bgpo.yaml"),
            *QUIET,
            "--model.init_args.policy.path",
            str(checkpoint),
            "--trainer.logger.init_args.save_dir",
            str(root),
            "--trainer.default_root_dir",
            str(root),
            *(extra_args or []),
        ],
        run=False,
    )
    before, before_se = _test_accuracy(cli)
    print(f"[before BGPO] held-out accuracy {before:.4f} +- {before_se:.4f}", flush=True)
    cli.trainer.fit(cli.model, cli.datamodule)
    after, after_se = _test_accuracy(cli)
    gain_se = (before_se**2 + after_se**2) ** 0.5  # unpaired, so conservative
    result = {
        "task": "sudoku 4x4 (generated), greedy cell accuracy on the held-out test split",
        "num_test": len(cli.datamodule.examples("test")),
        "accuracy_before": before,
        "accuracy_before_se": before_se,
        "accuracy_after": after,
        "accuracy_after_se": after_se,
        "gain": after - before,
        "gain_over_se": (after - before) / gain_se if gain_se > 0 else float("inf"),
        "log_dir": cli.trainer.log_dir,
        "hf_checkpoint": str(Path(cli.trainer.log_dir) / "hf_checkpoint"),
        "wall_seconds": time.perf_counter() - start,
    }
    (root / "results.json").write_text(json.dumps(result, indent=2))
    print(
        f"[after BGPO]  held-out accuracy {after:.4f} +- {after_se:.4f}\n"
        f"gain {after - before:+.4f} = {result['gain_over_se']:.1f} standard errors; "
        f"{result['wall_seconds']:.0f} s; logs {result['log_dir']}; "
        f"checkpoint {result['hf_checkpoint']}",
        flush=True,
    )
    return result
