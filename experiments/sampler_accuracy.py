"""Accuracy check of the fast samplers against the exact one (issue 11, part 5).

    python -m experiments.sampler_accuracy                # writes docs/sampler_accuracy.md
    python -m experiments.sampler_accuracy --num-test 256 --no-d1
    python -m experiments.sampler_accuracy --setup study-sudoku --num-test 128 --group-size 4

For an SFT warm start, on fixed held-out prompts (Sudoku puzzles, Countdown problems), every
sampler mode (exact, prefix cache, dual cache, confidence threshold 0.9, dual cache + threshold
0.9) is measured the same way:

- greedy cell accuracy (the task's accuracy) per puzzle, its mean and standard error, and the
  paired difference to the exact sampler with its paired standard error;
- G rollouts per puzzle at the setup's rollout temperature from a fixed seed: the mean reward
  (per-puzzle means are the paired unit), the paired difference to exact, and the fraction of
  puzzles whose G responses contain two identical ones;
- the number of model forwards (a forward hook on the transformers model, which both the exact
  and the cached path call) and the wall seconds, reported as ratios to exact.

Setups (``--setup``, see :data:`SETUPS`):

- ``embedded-default``: the embedded default's warm start, compact template and lenient reward,
  gen 16 / block 8 / steps 8, rollout temperature 1.0. Splits: its generated test split
  (``PromptDataModule`` with the settings of ``experiments/configs/sudoku_bgpo.yaml``), and
  d1's Sudoku test file when ``../shared/datasets/sudoku/test.jsonl`` is there (its rows fit
  the compact template). Writes ``docs/sampler_accuracy.md``.
- ``study-sudoku``: the small-scale study's warm start (``runs/paper_claims/sudoku/warmstart``,
  11M parameters, loaded as float32) with d1's prompt and reward (the task defaults) and the
  sampler of ``experiments/configs/paper_claims/sudoku_rl.yaml``: gen 32 / block 16 / steps 16,
  rollout temperature 0.9. Split: the study's test file (d1's test rows). Writes
  ``docs/sampler_accuracy_study.md``.
- ``study-countdown``: the same for the study's Countdown warm start (28M parameters) and
  ``experiments/configs/paper_claims/countdown_rl.yaml``. Writes
  ``docs/sampler_accuracy_countdown.md``.

The rows, their CSV and the report are built in :mod:`experiments.sampler_accuracy_report`.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from bgpo_lightning.diffusion.sampler import SamplerConfig
from bgpo_lightning.modules import DiffusionRLModule
from bgpo_lightning.policy import decode_responses
from bgpo_lightning.tasks import Example, Task
from bgpo_lightning.tasks.datamodule import PromptDataModule
from experiments.paired import mean_se, paired_difference
from experiments.sampler_accuracy_report import Row, render_doc, table, write_csv
from experiments.sampler_accuracy_setups import (
    EMBEDDED_DEFAULT,
    SETUPS,
    SHAPE,
    Setup,
)
from experiments.sampler_modes import RolloutMode
from experiments.sampler_modes import parse_mode as parse_rollout_mode


def parse_mode(spec: str) -> RolloutMode:
    """A mode from its name (:mod:`experiments.sampler_modes`), e.g. ``dual+refresh4``.
    ``graph`` is refused: it replays the dual cache's step as a CUDA graph, which gives the
    dual cache's tokens.

    Raises:
        ValueError: A malformed name, or ``graph``.
    """
    mode = parse_rollout_mode(spec)
    if mode.cuda_graph:
        raise ValueError(f"mode {spec!r}: graph gives the tokens of dual; measure dual")
    return mode


def mode_sampler(mode: RolloutMode, shape: Mapping[str, int], temperature: float) -> SamplerConfig:
    """The sampler of ``mode`` at ``shape`` (``gen_length``, ``block_length``, ``steps``)."""
    return mode.config(SamplerConfig(**shape, temperature=temperature))


MODE_NAMES = ("exact", "prefix", "dual", "threshold0.9", "dual+threshold0.9")
MODES: tuple[RolloutMode, ...] = tuple(parse_mode(name) for name in MODE_NAMES)


@dataclass
class ModeScores:
    """Per-puzzle measurements of one mode on one split.

    Attributes:
        accuracy: Greedy accuracy per puzzle.
        reward: Mean reward of the G rollouts per puzzle.
        duplicate: Per puzzle, 1.0 when two of its G responses are identical.
        forwards: Model forwards over greedy decoding and rollouts.
        tokens: Query positions run over those forwards.
        seconds: Wall seconds over greedy decoding and rollouts.
    """

    accuracy: list[float] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)
    duplicate: list[float] = field(default_factory=list)
    forwards: int = 0
    tokens: int = 0
    seconds: float = 0.0


@contextmanager
def count_forwards(module: torch.nn.Module) -> Iterator[list[int]]:
    """Counts calls of ``module`` while the context is open.

    Yields:
        ``[calls, tokens]``: forwards, and query positions run (``input_ids.numel()``) over them.
    """
    counter = [0, 0]

    def hook(_module: torch.nn.Module, args: tuple, kwargs: dict, _output: object) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        counter[0] += 1
        counter[1] += 0 if ids is None else ids.numel()

    handle = module.register_forward_hook(hook, with_kwargs=True)
    try:
        yield counter
    finally:
        handle.remove()


def has_duplicate(responses: torch.Tensor) -> bool:
    """Whether two rows of ``(G, L)`` token ids are equal."""
    return torch.unique(responses, dim=0).shape[0] < responses.shape[0]


def chunks(items: Sequence[Example], size: int) -> Iterator[tuple[int, Sequence[Example]]]:
    """Consecutive slices of at most ``size`` items, with their index."""
    for index, start in enumerate(range(0, len(items), size)):
        yield index, items[start : start + size]


def score(
    module: DiffusionRLModule, task: Task, responses: torch.Tensor, examples: Sequence[Example]
) -> list[tuple[float, float]]:
    """``(reward, accuracy)`` of each response row."""
    texts = decode_responses(module.tokenizer, responses, task.cut_at_eos)
    return [(float(r), float(a)) for r, a in task.score_batch(texts, list(examples))]


def measure_mode(
    module: DiffusionRLModule,
    task: Task,
    examples: Sequence[Example],
    mode: RolloutMode,
    group_size: int,
    seed: int,
    prompts_per_batch: int,
    shape: Mapping[str, int] = SHAPE,
    temperature: float = 1.0,
) -> ModeScores:
    """Greedy accuracy and rollouts at ``temperature`` of one mode on the examples.

    Each batch of prompts gets its own generator seeded from ``seed`` and the batch index, so
    every mode starts each batch from the same random state.
    """
    scores = ModeScores()
    greedy = mode_sampler(mode, shape, 0.0)
    rollout = mode_sampler(mode, shape, temperature)
    start = time.perf_counter()
    with count_forwards(module.policy.model) as counter:
        for _, batch in chunks(examples, prompts_per_batch * group_size):
            ids, mask = module.prompt_tensors([e.prompt for e in batch])
            responses = module.sample(ids, mask, greedy)
            scores.accuracy += [a for _, a in score(module, task, responses, batch)]
        for index, batch in chunks(examples, prompts_per_batch):
            ids, mask = module.prompt_tensors([e.prompt for e in batch])
            ids = ids.repeat_interleave(group_size, dim=0)
            mask = mask.repeat_interleave(group_size, dim=0)
            generator = torch.Generator(device=module.device).manual_seed(seed * 100_003 + index)
            responses = module.sample(ids, mask, rollout, generator)
            repeated = [e for e in batch for _ in range(group_size)]
            rewards = torch.tensor([r for r, _ in score(module, task, responses, repeated)])
            scores.reward += rewards.view(-1, group_size).mean(dim=1).tolist()
            scores.duplicate += [
                float(has_duplicate(group)) for group in responses.view(len(batch), group_size, -1)
            ]
    scores.seconds = time.perf_counter() - start
    scores.forwards, scores.tokens = counter
    return scores


def compare(split: str, results: dict[str, ModeScores]) -> list[Row]:
    """Table rows of every mode against the ``"exact"`` entry of ``results``."""
    exact = results["exact"]
    rows = []
    for name, s in results.items():
        accuracy, accuracy_se = mean_se(s.accuracy)
        reward, reward_se = mean_se(s.reward)
        if name == "exact":
            acc_diff = reward_diff = 0.0
            acc_diff_se = reward_diff_se = 0.0
        else:
            acc = paired_difference(exact.accuracy, s.accuracy)
            rew = paired_difference(exact.reward, s.reward)
            acc_diff, acc_diff_se, reward_diff, reward_diff_se = acc.gain, acc.se, rew.gain, rew.se
        rows.append(
            Row(
                split=split,
                mode=name,
                n=len(s.accuracy),
                accuracy=accuracy,
                accuracy_se=accuracy_se,
                accuracy_diff=acc_diff,
                accuracy_diff_se=acc_diff_se,
                reward=reward,
                reward_se=reward_se,
                reward_diff=reward_diff,
                reward_diff_se=reward_diff_se,
                duplicate_fraction=math.fsum(s.duplicate) / len(s.duplicate),
                forwards=s.forwards,
                forward_ratio=s.forwards / exact.forwards,
                token_ratio=s.tokens / exact.tokens,
                time_ratio=s.seconds / exact.seconds,
                seconds=s.seconds,
            )
        )
    return rows


def run_check(
    module: DiffusionRLModule,
    task: Task,
    splits: dict[str, Sequence[Example]],
    modes: Sequence[RolloutMode] = MODES,
    group_size: int = 8,
    seed: int = 0,
    prompts_per_batch: int = 64,
    shape: Mapping[str, int] = SHAPE,
    temperature: float = 1.0,
) -> list[Row]:
    """Measures every mode on every split; the first mode must be named ``"exact"``.

    Args:
        module: The policy module (its ``sample`` runs every mode).
        task: Scores the responses.
        splits: Split label to examples.
        modes: Sampler modes, the exact one first.
        group_size: Rollouts per prompt (G).
        seed: Seeds the rollouts.
        prompts_per_batch: Prompts per rollout batch (greedy batches hold G times as many).
        shape: ``gen_length``, ``block_length`` and ``steps`` of every mode.
        temperature: Rollout temperature.

    Returns:
        One row per split and mode, in that order.
    """
    if not modes or modes[0].name != "exact":
        raise ValueError("the first mode must be the exact sampler, named 'exact'")
    module.eval()
    rows = []
    with torch.no_grad():
        # Warm-up: the first forwards pay one-time costs that would be charged to exact.
        for mode in modes:
            first = next(iter(splits.values()))[:group_size]
            measure_mode(module, task, first, mode, 1, seed, len(first), shape, temperature)
        for split, examples in splits.items():
            results = {
                mode.name: measure_mode(
                    module,
                    task,
                    examples,
                    mode,
                    group_size,
                    seed,
                    prompts_per_batch,
                    shape,
                    temperature,
                )
                for mode in modes
            }
            rows += compare(split, results)
    return rows


def load_splits(
    num_test: int, seed: int, use_d1: bool, setup: Setup = EMBEDDED_DEFAULT
) -> tuple[dict, Task, list[str]]:
    """The setup's splits (its generated test split, d1's test split when available), the
    task and notes.

    Raises:
        FileNotFoundError: The setup has no generated split and its d1 test file is missing.
        ValueError: No split is left to measure (``use_d1`` off without a generated split).
    """
    data = PromptDataModule(
        task=setup.task,
        task_kwargs=dict(setup.task_kwargs),
        num_train=20000,
        num_val=256,
        num_test=num_test,
        seed=seed,
    )
    splits: dict[str, Sequence[Example]] = {}
    notes = []
    if setup.generated_test:
        splits["generated test"] = data.examples("test")
        notes.append(
            f"`generated test`: the first {num_test} puzzles of the embedded default's test "
            f"split (PromptDataModule, seed {seed}, num_train 20000 and num_val 256 as in "
            "`experiments/configs/sudoku_bgpo.yaml`, so disjoint from the SFT training puzzles)."
        )
    if not use_d1:
        notes.append(f"d1's {setup.task} test split: skipped (--no-d1).")
    elif setup.d1_test.is_file():
        d1 = data.task.load(str(setup.d1_test), limit=num_test)
        splits["d1 test"] = d1
        notes.append("`d1 test`: " + setup.d1_note.format(n=len(d1), path=setup.d1_test))
    elif setup.generated_test:
        notes.append(f"d1's {setup.task} test split: skipped, `{setup.d1_test}` not found.")
    else:
        raise FileNotFoundError(f"no test split at {setup.d1_test}")
    if not splits:
        raise ValueError(f"setup {setup.name!r} has no split to measure without d1's test file")
    return splits, data.task, notes


def parser() -> argparse.ArgumentParser:
    """Command-line options; those without a default fall back to the setup's."""
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument(
        "--setup",
        choices=tuple(SETUPS),
        default=EMBEDDED_DEFAULT.name,
        help="policy, task, sampler shape and report paths (default: %(default)s)",
    )
    cli.add_argument(
        "--warm-start",
        type=Path,
        help="policy directory, with its own tokenizer (default: the setup's policy)",
    )
    cli.add_argument("--temperature", type=float, help="rollout temperature (default: the setup's)")
    cli.add_argument("--d1-test", type=Path, help="d1 test rows (default: the setup's)")
    cli.add_argument("--num-test", type=int, default=512, help="prompts per split")
    cli.add_argument("--group-size", type=int, default=8, help="rollouts per prompt (G)")
    cli.add_argument("--seed", type=int, default=0)
    cli.add_argument("--no-d1", action="store_true", help="skip d1's test split")
    cli.add_argument(
        "--modes",
        nargs="+",
        default=list(MODE_NAMES),
        help="modes to measure, e.g. dual+refresh4 prefix+threshold0.95 (exact is always run, "
        "first: the others are compared with it)",
    )
    cli.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    cli.add_argument("--device", default="cpu", help="where the modes run, e.g. cuda")
    cli.add_argument("--doc", type=Path, help="Markdown report (default: the setup's)")
    cli.add_argument("--csv-dir", type=Path, help="folder of results.csv (default: the setup's)")
    return cli


def chosen_setup(args: argparse.Namespace) -> tuple[Setup, list[str]]:
    """The ``--setup`` named, with the options that override it, and notes on overrides that
    the report's policy and sampler lines would otherwise misstate."""
    setup = SETUPS[args.setup]
    overrides = {
        name: value
        for name, value in (
            ("warm_start", args.warm_start),
            ("temperature", args.temperature),
            ("d1_test", args.d1_test),
            ("doc", args.doc),
            ("csv_dir", args.csv_dir),
        )
        if value is not None
    }
    notes = []
    if "warm_start" in overrides and overrides["warm_start"] != setup.warm_start:
        overrides["tokenizer"] = None  # another checkpoint: the tokenizer saved with it
        notes.append(
            f"Warm start overridden: `{overrides['warm_start']}` with its own tokenizer "
            "(--warm-start)."
        )
    if "temperature" in overrides and overrides["temperature"] != setup.temperature:
        notes.append(
            f"Rollout temperature overridden: {overrides['temperature']} instead of the "
            f"setup's {setup.temperature} (--temperature)."
        )
    return replace(setup, **overrides), notes


def main(argv: list[str] | None = None) -> int:
    """Runs the check and writes the Markdown report and the CSV."""
    cli = parser()
    args = cli.parse_args(argv)
    try:
        modes = [parse_mode(m) for m in dict.fromkeys(["exact", *args.modes])]
    except ValueError as error:
        cli.error(str(error))
    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        cli.error(f"--device {args.device}: {error}")
    if device.type not in ("cpu", "cuda"):
        cli.error(f"--device {args.device}: expected cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        cli.error(f"--device {args.device}: CUDA is not available on this machine")
    setup, override_notes = chosen_setup(args)
    torch.set_num_threads(args.threads)
    if not (setup.warm_start / "model.safetensors").is_file():
        print(f"error: no warm start at {setup.warm_start}; {setup.build_hint}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        splits, task, notes = load_splits(args.num_test, args.seed, not args.no_d1, setup)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}; {setup.build_hint}", file=sys.stderr)
        return 2
    from experiments.estimator_study.batch import build_module

    module = build_module(
        setup.warm_start,
        args.num_test * args.group_size,
        args.group_size,
        tokenizer_path=setup.tokenizer,
        dtype=setup.dtype,
    ).to(device)
    rows = run_check(
        module,
        task,
        splits,
        modes,
        args.group_size,
        args.seed,
        shape=setup.shape,
        temperature=setup.temperature,
    )
    total = time.perf_counter() - start
    write_csv(rows, setup.csv_dir / "results.csv")
    command = "python -m experiments.sampler_accuracy" + (
        " " + shlex.join(argv if argv is not None else sys.argv[1:])
        if (argv or sys.argv[1:])
        else ""
    )
    setup.doc.parent.mkdir(parents=True, exist_ok=True)
    setup.doc.write_text(
        render_doc(
            rows, command, notes + override_notes, args.group_size, args.seed, total, setup, device
        )
    )
    print(table(rows))
    print(f"wrote {setup.doc} and {setup.csv_dir / 'results.csv'} in {total:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
