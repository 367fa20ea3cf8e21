"""The embedded default: SFT warm start, then BGPO, on generated Sudoku 4x4, on a CPU.

For each seed:
1. Build a LLaDA-shaped tiny model and a character tokenizer locally (no hub).
2. Warm-start it with masked-diffusion SFT (``configs/sudoku_sft.yaml``); the result is
   cached under ``<root>/seed_<s>/warmstart`` and reused while config, seed and overrides
   are unchanged.
3. Measure greedy accuracy (cell accuracy, as d1 reports Sudoku) on every held-out puzzle.
4. Train with BGPO (``configs/sudoku_bgpo.yaml``) and measure again on the same puzzles.
The gain's standard error is paired over the puzzles. A summary table (printed, and written
to ``<root>/summary.md`` and ``summary.json``) names the logs, checkpoints and curves.

    python -m experiments.embedded_default --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.paired import paired_difference

CONFIGS = Path(__file__).parent / "configs"
SFT_CONFIG = CONFIGS / "sudoku_sft.yaml"
RL_CONFIG = CONFIGS / "sudoku_bgpo.yaml"
ROOT = Path("runs/embedded_default")
# The model summary is a page of Lightning's table for a model built by our own config.
COMMON = ["--trainer.enable_model_summary", "false"]

EPILOG = """\
Any key of the two configs can be changed with --set-sft / --set-rl KEY=VALUE, for example
  --set-sft trainer.max_steps=300          SFT steps of the warm start
  --set-rl trainer.max_steps=200           BGPO steps
  --set-rl model.init_args.optim.lr=3e-4   BGPO learning rate
  --set-rl model.init_args.num_mc_samples=8
  --set-rl data.num_test=1024              held-out puzzles (same seed in both configs)
The full list: python -m experiments.run fit --config experiments/configs/sudoku_bgpo.yaml --help
"""


@dataclass(frozen=True)
class SeedResult:
    """One seed's before/after accuracies over the same held-out puzzles."""

    seed: int
    num_test: int
    accuracy_before: float
    accuracy_after: float
    gain: float
    paired_se: float
    gain_over_se: float
    seconds: float
    warm_start_cached: bool
    log_dir: str
    hf_checkpoint: str
    curves: str


def as_cli_args(overrides: list[str]) -> list[str]:
    """``["a.b=1"]`` -> ``["--a.b", "1"]``; a malformed item is a one-line error."""
    args: list[str] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: override {item!r} is not KEY=VALUE")
        args += [f"--{key.removeprefix('--')}", value]
    return args


def _seeded(seed: int, root: Path) -> list[str]:
    # The data seed stays at the config's value: every seed is scored on the same puzzles.
    return [
        *COMMON,
        "--seed_everything",
        str(seed),
        "--model.init_args.seed",
        str(seed),
        "--trainer.logger.init_args.save_dir",
        str(root),
        "--trainer.default_root_dir",
        str(root),
    ]


def _fingerprint(seed: int, overrides: list[str]) -> str:
    text = SFT_CONFIG.read_bytes() + json.dumps([seed, overrides]).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def warm_start(root: Path, seed: int, overrides: list[str]) -> tuple[Path, bool]:
    """The SFT checkpoint directory and whether it was cached; trains it when not."""
    from bgpo_lightning.callbacks import HFExport
    from bgpo_lightning.cli import build_cli

    target = root / "warmstart"
    stamp = target / "sft_config.sha256"
    if stamp.is_file() and stamp.read_text() == _fingerprint(seed, overrides):
        print(f"[seed {seed}] reusing the cached SFT warm start {target}", flush=True)
        return target, True
    print(f"[seed {seed}] masked-diffusion SFT warm start of the tiny model", flush=True)
    args = ["--config", str(SFT_CONFIG), *_seeded(seed, root), *as_cli_args(overrides)]
    cli = build_cli(args, run=False)
    for callback in cli.trainer.callbacks:
        if isinstance(callback, HFExport):
            callback.dirpath = str(target)
    cli.trainer.fit(cli.model, cli.datamodule)
    stamp.write_text(_fingerprint(seed, overrides))
    return target, False


def _test_scores(cli) -> list[float]:
    cli.trainer.test(cli.model, cli.datamodule, verbose=False)
    return cli.model.test_scores.tolist()


def run_seed(
    seed: int, root: Path = ROOT, sft: list[str] | None = None, rl: list[str] | None = None
) -> SeedResult:
    """Warm start, accuracy, BGPO, accuracy again, for one seed under ``root/seed_<s>``."""
    from bgpo_lightning.cli import build_cli

    start = time.perf_counter()
    directory = root / f"seed_{seed}"
    checkpoint, cached = warm_start(directory, seed, list(sft or []))
    args = [
        "--config",
        str(RL_CONFIG),
        *_seeded(seed, directory),
        "--model.init_args.policy.path",
        str(checkpoint),
        *as_cli_args(list(rl or [])),
    ]
    cli = build_cli(args, run=False)
    before = _test_scores(cli)
    print(f"[seed {seed}] before BGPO: accuracy {sum(before) / len(before):.4f}", flush=True)
    cli.trainer.fit(cli.model, cli.datamodule)
    after = _test_scores(cli)
    stats = paired_difference(before, after)
    log_dir = Path(cli.trainer.log_dir)
    result = SeedResult(
        seed=seed,
        num_test=stats.n,
        accuracy_before=stats.before,
        accuracy_after=stats.after,
        gain=stats.gain,
        paired_se=stats.se,
        gain_over_se=stats.z,
        seconds=time.perf_counter() - start,
        warm_start_cached=cached,
        log_dir=str(log_dir),
        hf_checkpoint=str(log_dir / "hf_checkpoint"),
        curves=str(log_dir / "curves.png"),
    )
    (directory / "results.json").write_text(json.dumps(asdict(result), indent=2))
    # Per puzzle, in test order: other runs on the same puzzles pair up with these.
    (directory / "scores.json").write_text(json.dumps({"before": before, "after": after}))
    return result


def summary_table(results: list[SeedResult]) -> str:
    """A Markdown table of the seeds, then where each seed's files are."""
    lines = [
        "| seed | before | after | gain | paired SE | gain / SE | time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cached = " (warm start cached)" if r.warm_start_cached else ""
        lines.append(
            f"| {r.seed} | {r.accuracy_before:.4f} | {r.accuracy_after:.4f} | {r.gain:+.4f} "
            f"| {r.paired_se:.4f} | {r.gain_over_se:.1f} | {r.seconds:.0f}{cached} |"
        )
    lines.append("")
    for r in results:
        lines.append(
            f"seed {r.seed}: logs {r.log_dir} (tensorboard --logdir {r.log_dir}), "
            f"curves {r.curves}, checkpoint {r.hf_checkpoint}"
        )
    return "\n".join(lines)


def run_embedded_default(
    root: Path = ROOT,
    seeds: list[int] | None = None,
    sft: list[str] | None = None,
    rl: list[str] | None = None,
) -> list[SeedResult]:
    """Runs every seed, prints and writes the summary (``summary.md``, ``summary.json``)."""
    from experiments.quiet import quiet_entry_point

    quiet_entry_point()
    results = [run_seed(seed, root, sft, rl) for seed in seeds or [0]]
    n = results[0].num_test
    table = summary_table(results)
    header = (
        f"Embedded default: Sudoku 4x4, greedy cell accuracy on the same {n} held-out puzzles "
        "before and after BGPO; SE paired over puzzles."
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "summary.md").write_text(f"{header}\n\n{table}\n")
    settings = {"seeds": seeds or [0], "sft_overrides": sft or [], "rl_overrides": rl or []}
    summary = {"settings": settings, "results": [asdict(r) for r in results]}
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\n{header}\n\n{table}\n\nwritten: {root / 'summary.md'}", flush=True)
    return results


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.embedded_default",
        description="SFT warm start then BGPO on generated Sudoku 4x4, offline, on a CPU; "
        "accuracy before and after on the same held-out puzzles, per seed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to run (default 0)")
    p.add_argument("--root", type=Path, default=ROOT, help=f"output folder (default {ROOT})")
    p.add_argument(
        "--set-sft", action="append", default=[], metavar="KEY=VALUE", help="change sudoku_sft.yaml"
    )
    p.add_argument(
        "--set-rl", action="append", default=[], metavar="KEY=VALUE", help="change sudoku_bgpo.yaml"
    )
    return p


def main(argv: list[str] | None = None, cli: argparse.ArgumentParser | None = None) -> int:
    """Parses ``argv`` with ``cli`` (default: :func:`parser`) and runs every seed."""
    args = (cli or parser()).parse_args(argv)
    run_embedded_default(args.root, args.seeds, args.set_sft, args.set_rl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
