"""One run of the study: a method at a learning rate and seed, from the task's warm start.

    python -m experiments.paper_claims.run_one --task sudoku --method bgpo_nt16 --lr 1e-4 --seed 0

Writes ``<root>/<task>/runs/<method>__lr<lr>__seed<seed>/result.json``: the held-out curve
(validation and test accuracy every ``--eval-every`` rollout batches), the training reward
per batch, time per batch split into rollout and likelihood phases, peak GPU memory, and,
for BGPO at n_t = 16, the gradient bias/variance measurements. A run that fails writes its
error as the result's status, in one line, and exits with 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from experiments.paper_claims.entry import CONCURRENCY_VARIABLE, CONFIGS, ROOT
from experiments.paper_claims.plan import TASKS, RunKey, method
from experiments.paper_claims.prepare import data_args
from experiments.paper_claims.resume import (
    BatchCheckpoint,
    checkpoint_dir,
    merged_gradient_statistics,
    prepare_scratch,
    scratch_dir,
)
from experiments.paper_claims.warm_start import warm_start_dir, weights_sha256

EVAL_EVERY = 10
GRADIENT_STATS_METHOD = "bgpo_nt16"  # the runs the gradient-statistics callback watches


def run_dir(root: Path, key: RunKey) -> Path:
    return root / key.task / "runs" / key.name


def vrpo_ol_n_t(root: Path, task: str) -> int:
    probe = root / task / "probe.json"
    if not probe.is_file():
        raise SystemExit(f"error: {probe} is missing; run python -m experiments.paper_claims.probe")
    return int(json.loads(probe.read_text())["vrpo_ol_n_t"])


def cli_args(
    root: Path, key: RunKey, directory: Path, overrides: list[str], n_t: int | None = None
) -> list[str]:
    """The run's CLI arguments; ``n_t`` overrides the method's n_t (VRPO-OL's comes from
    the probe, which sets it itself while it measures)."""
    chosen = method(key.method)
    args = ["--config", str(CONFIGS / f"{key.task}_rl.yaml"), *chosen.cli_args()]
    if n_t is None and key.method == "vrpo_ol":
        n_t = vrpo_ol_n_t(root, key.task)
    if n_t is not None:
        args += ["--model.init_args.num_mc_samples", str(n_t)]
    return [
        *args,
        "--model.init_args.policy.path",
        str(warm_start_dir(root, key.task)),
        "--model.init_args.optim.lr",
        str(key.lr),
        "--model.init_args.seed",
        str(key.seed),
        "--seed_everything",
        str(key.seed),
        "--trainer.default_root_dir",
        str(directory),
        *data_args(root, key.task),
        *overrides,
    ]


def error_summary(error: Exception, limit: int = 400) -> str:
    """The error's message on one line; the CLI's dumps of the whole config are left out."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    kept = [line for line in lines if not line.startswith("Given value")]
    return "; ".join(kept)[:limit]


def gradient_statistics(seed: int, batches: int):
    from bgpo_lightning.callbacks import GradientStatistics

    # Twice per run (mid-way and at the end), on a small grid: a measurement costs
    # 4 x (1 + 4 + 16) + 64 backward passes, several training steps' worth.
    return GradientStatistics(
        every_n_steps=max(1, batches // 2),
        num_mc_samples=[1, 4, 16],
        repeats=4,
        golden_num_mc_samples=64,
        seed=seed,
        log_figure=False,
    )


def machine(device) -> dict:
    """Where this run ran (``device``: the trainer's): a study spans sessions, and step
    times depend on how the GPU was shared."""
    import torch

    cuda = device.type == "cuda"
    return {
        "device": torch.cuda.get_device_name(device) if cuda else "CPU",
        "torch": torch.__version__,
        "mps": bool(os.environ.get("CUDA_MPS_PIPE_DIRECTORY")),
        "concurrent_runs": int(os.environ.get(CONCURRENCY_VARIABLE, "1")),
    }


def train(
    root: Path,
    key: RunKey,
    eval_every: int = EVAL_EVERY,
    overrides: list[str] | None = None,
    evaluate: bool = True,
    with_gradient_statistics: bool | None = None,
    directory: Path | None = None,
    n_t: int | None = None,
) -> dict:
    """Trains one run and returns its result (also written to ``result.json`` in
    ``directory``, by default the run's folder)."""
    import torch

    from bgpo_lightning.cli import build_cli
    from experiments.paper_claims.curves import HeldOutCurve, StepRecorder

    directory = directory or run_dir(root, key)
    start = time.perf_counter()
    warm_start_sha256 = weights_sha256(warm_start_dir(root, key.task))
    scratch = scratch_dir(directory, root)
    checkpoint, progress = prepare_scratch(scratch, warm_start_sha256)
    if scratch != directory:  # the result folder holds only what a finished run writes
        shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    command = (
        f"python -m experiments.paper_claims.run_one --task {key.task} --method {key.method} "
        f"--lr {key.lr:g} --seed {key.seed}"
    )
    result = {
        "task": key.task,
        "method": key.method,
        "label": method(key.method).label,
        "lr": key.lr,
        "seed": key.seed,
        "command": command,
        "status": "running",
        "curve": [],
        "grad_stats_csv": None,
    }
    try:
        args = cli_args(root, key, scratch, list(overrides or []), n_t)
        cli = build_cli(args, run=False)
        trainer, module = cli.trainer, cli.model
        result["machine"] = machine(trainer.strategy.root_device)
        batches = int(trainer.limit_train_batches)
        recorder = StepRecorder()
        if checkpoint is not None:
            progress["resumed_at"].append(progress["batches"])
            print(f"[{key.name}] resuming after batch {progress['batches']}", flush=True)
        elapsed = lambda: time.perf_counter() - start  # noqa: E731
        callbacks = [recorder, BatchCheckpoint(checkpoint_dir(scratch), progress, elapsed)]
        curve = HeldOutCurve(eval_every, batches) if evaluate else None
        if curve is not None:
            callbacks.append(curve)
        if with_gradient_statistics is None:
            with_gradient_statistics = key.method == GRADIENT_STATS_METHOD
        if with_gradient_statistics:
            callbacks.append(gradient_statistics(key.seed, batches))
        trainer.callbacks.extend(callbacks)
        if torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = True  # float32 weights, TF32 matmuls
        trainer.fit(module, cli.datamodule, ckpt_path=str(checkpoint) if checkpoint else None)
        result.update(
            settings={
                "objective": module.hparams.objective,
                "estimator": type(module.estimator).__name__,
                "num_mc_samples": module.num_mc_samples,
                "num_inner_updates": module.num_inner_updates,
                "kl_coef": module.kl_coef,
            },
            rollout_batches=len(recorder.rows),
            curve=curve.curve if curve is not None else [],
            **recorder.summary(),
        )
        result["warm_start_sha256"] = warm_start_sha256
        if merged_gradient_statistics(scratch, directory / "gradient_statistics.csv"):
            result["grad_stats_csv"] = "gradient_statistics.csv"
        result["status"] = "ok"
    except Exception as error:  # recorded, not raised: the scheduler goes on with other runs
        traceback.print_exc()
        result["status"] = f"error: {type(error).__name__}: {error_summary(error)}"
    # Over every part of a resumed run; "resumed_at": the batches done before each restart.
    result["wall_s"] = progress["wall_s"] + time.perf_counter() - start
    result["resumed_at"] = progress["resumed_at"]
    shutil.rmtree(checkpoint_dir(scratch), ignore_errors=True)  # done: a rerun starts afresh
    # Written whole, then renamed: the scheduler reads result files while runs finish.
    partial = directory / "result.json.partial"
    partial.write_text(json.dumps(result, indent=1))
    partial.replace(directory / "result.json")
    return result


def main(argv: list[str] | None = None) -> int:
    from experiments.embedded_default import as_cli_args
    from experiments.quiet import quiet_entry_point

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--task", choices=TASKS, required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--root", type=Path, default=ROOT)
    p.add_argument("--eval-every", type=int, default=EVAL_EVERY)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    try:
        method(args.method)
    except KeyError as error:
        raise SystemExit(f"error: {error.args[0]}") from None
    quiet_entry_point()
    key = RunKey(args.task, args.method, args.lr, args.seed)
    result = train(args.root, key, args.eval_every, as_cli_args(args.set))
    print(f"[{key.name}] {result['status']} in {result['wall_s']:.0f} s", flush=True)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
