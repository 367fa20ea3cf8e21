"""The accuracy check's outputs (:mod:`experiments.sampler_accuracy`): one row per split and
mode against the exact sampler, the CSV of the rows and the generated Markdown report."""

from __future__ import annotations

import csv
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from experiments.sampler_accuracy_setups import EMBEDDED_DEFAULT, Setup
from experiments.sampler_modes import parse_mode

TOLERANCE = 0.01
"""One point: the issue's bound on the accuracy or reward a fast mode may lose."""


@dataclass(frozen=True)
class Row:
    """One line of the table: a mode on a split, against the exact sampler.

    Attributes:
        split: Split label.
        mode: Mode name.
        n: Puzzles.
        accuracy: Mean greedy accuracy.
        accuracy_se: Its standard error.
        accuracy_diff: Paired mean of ``accuracy - exact accuracy``.
        accuracy_diff_se: Its paired standard error.
        reward: Mean rollout reward.
        reward_se: Its standard error (per-puzzle means as the unit).
        reward_diff: Paired mean of ``reward - exact reward``.
        reward_diff_se: Its paired standard error.
        duplicate_fraction: Fraction of puzzles with two identical rollouts.
        forwards: Model forwards.
        forward_ratio: ``forwards / exact forwards``.
        token_ratio: Query positions run over exact's.
        time_ratio: ``seconds / exact seconds``.
        seconds: Wall seconds.
    """

    split: str
    mode: str
    n: int
    accuracy: float
    accuracy_se: float
    accuracy_diff: float
    accuracy_diff_se: float
    reward: float
    reward_se: float
    reward_diff: float
    reward_diff_se: float
    duplicate_fraction: float
    forwards: int
    forward_ratio: float
    token_ratio: float
    time_ratio: float
    seconds: float

    @property
    def holds(self) -> bool:
        """Whether both paired differences are above minus one point."""
        return self.accuracy_diff >= -TOLERANCE and self.reward_diff >= -TOLERANCE


def describe_modes(rows: Sequence[Row]) -> str:
    """Each measured mode with the sampler settings its name stands for (a name that
    :func:`parse_mode` does not read, given to ``run_check`` directly, stands alone)."""
    described = []
    for name in dict.fromkeys(r.mode for r in rows):
        try:
            mode = parse_mode(name)
        except ValueError:
            described.append(name)
            continue
        changed = {k: v for k, v in mode.changed_settings().items() if k != "cache"}
        settings = [f"cache={mode.cache!r}", *(f"{k}={v!r}" for k, v in changed.items())]
        described.append(f"{name} (`{', '.join(settings)}`)")
    return ", ".join(described)


CSV_FIELDS = tuple(Row.__dataclass_fields__)


def write_csv(rows: Sequence[Row], path: Path) -> None:
    """Writes the rows, one per split and mode, with every field."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        for row in rows:
            writer.writerow(
                [
                    f"{v:.6g}" if isinstance(v, float) else v
                    for v in (getattr(row, f) for f in CSV_FIELDS)
                ]
            )


def points(value: float) -> str:
    """A fraction as percentage points with one decimal."""
    return f"{100 * value:.1f}"


def table(rows: Sequence[Row]) -> str:
    """The Markdown table of the rows (accuracy and reward in points)."""
    lines = [
        "| split | mode | n | greedy acc | Δ acc vs exact | rollout reward | Δ reward vs exact "
        "| dup. groups | forwards | fwd ratio | positions ratio | time ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.split} | {r.mode} | {r.n} | {points(r.accuracy)} ± {points(r.accuracy_se)} "
            f"| {points(r.accuracy_diff):>5} ± {points(r.accuracy_diff_se)} "
            f"| {points(r.reward)} ± {points(r.reward_se)} "
            f"| {points(r.reward_diff)} ± {points(r.reward_diff_se)} "
            f"| {points(r.duplicate_fraction)}% | {r.forwards} | {r.forward_ratio:.2f} "
            f"| {r.token_ratio:.2f} | {r.time_ratio:.2f} |"
        )
    return "\n".join(lines)


def verdicts(rows: Sequence[Row]) -> list[str]:
    """One generated sentence per non-exact row: within one point of exact or not."""
    sentences = []
    for r in rows:
        if r.mode == "exact":
            continue
        parts = []
        for label, diff, se in (
            ("greedy accuracy", r.accuracy_diff, r.accuracy_diff_se),
            ("mean rollout reward", r.reward_diff, r.reward_diff_se),
        ):
            within = "within" if diff >= -TOLERANCE else "NOT within"
            parts.append(
                f"{label} {within} 1 point of exact ({points(diff)} ± {points(se)} points)"
            )
        sentences.append(
            f"- **{r.mode}** on {r.split}: {parts[0]}; {parts[1]}; "
            f"{r.forward_ratio:.2f}x the forwards, {r.token_ratio:.2f}x the positions run and "
            f"{r.time_ratio:.2f}x the wall time of exact."
        )
    return sentences


def machine(device: torch.device | str = "cpu") -> str:
    """One line describing the host, the torch build and the device the modes ran on."""
    device = torch.device(device)
    where = "CPU only" if device.type == "cpu" else torch.cuda.get_device_name(device)
    return (
        f"{platform.machine()} {platform.system()} ({os.cpu_count()} CPU cores, "
        f"{torch.get_num_threads()} torch threads), Python {platform.python_version()}, "
        f"torch {torch.__version__}, {where}"
    )


def time_remark(device: torch.device | str) -> str:
    """What the time ratios mean on the device the modes ran on."""
    if torch.device(device).type == "cpu":
        return (
            "**CPU times are not the GPU figures**: this tiny model runs on a shared CPU, where "
            "the time ratios mostly reflect the number of forwards and Python overhead. The GPU "
            "speed of each mode is measured by `experiments.gpu_benchmark`."
        )
    return (
        "Times include decoding and scoring the responses on the CPU, and a small model leaves "
        "the GPU mostly idle: the ratios show what each mode saves on this model, not at the "
        "1b and 8b shapes of `experiments.gpu_benchmark`."
    )


def threshold_remark(rows: Sequence[Row]) -> str:
    """End of the report's threshold sentence: says that the forwards barely drop only when
    every threshold row ran at least 0.9x exact's forwards."""
    threshold_rows = [r for r in rows if "threshold" in r.mode]
    if threshold_rows and all(r.forward_ratio >= 0.9 for r in threshold_rows):
        return ", so with batches of hundreds of rows the forwards barely drop on CPU here."
    return "."


def render_doc(
    rows: Sequence[Row],
    command: str,
    notes: Sequence[str],
    group_size: int,
    seed: int,
    total_seconds: float,
    setup: Setup = EMBEDDED_DEFAULT,
    device: torch.device | str = "cpu",
) -> str:
    """The Markdown report; policy, sampler shape, temperature and CSV path are the setup's."""
    shape = setup.shape
    source = f" {setup.sampler_source}" if setup.sampler_source else ""
    lines = [
        "# Sampler accuracy check: fast modes against the exact sampler",
        "",
        "Generated by `experiments/sampler_accuracy.py` (issue 11, part 5); do not edit by hand.",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine(device)}",
        f"- Total run time: {total_seconds:.0f} s",
        f"- Policy: {setup.policy}",
        f"- Sampler: gen_length {shape['gen_length']}, block_length {shape['block_length']}, "
        f"steps {shape['steps']}; greedy for accuracy, temperature {float(setup.temperature)} "
        f"with G = {group_size} responses per {setup.item} (seed {seed}) for the reward.{source}",
        f"- Modes: {describe_modes(rows)}; caches refreshed at each block start, and every "
        "`cache_refresh_steps` steps where a mode sets it.",
        "",
        f"Accuracy and reward are in points ({setup.accuracy_unit}); `±` is one standard "
        f"error. Δ columns are paired differences (mode − exact) over the same {setup.item}s "
        f"with the paired standard error; the reward's unit is the per-{setup.item} mean of the "
        f"G rollouts. `dup. groups` is the fraction of {setup.item}s whose G rollouts contain "
        "two identical "
        "responses. `forwards` counts calls of the transformers model (greedy and rollout batches "
        "together; a cached step counts as one forward though it runs fewer positions); "
        "`positions ratio` is the number of query positions run over exact's (a cached step "
        "runs the block, or the block and the suffix); `time ratio` is wall time over exact's. "
        "With the threshold, a batch stops a block early only when no row of the batch has a "
        f"mask left{threshold_remark(rows)}",
        "",
        time_remark(device),
        "",
        table(rows),
        "",
        "## Verdicts (generated)",
        "",
        "A mode is within 1 point when its paired difference to exact is above "
        f"−{points(TOLERANCE)} points (the estimate, not a confidence bound).",
        "",
        *verdicts(rows),
    ]
    if notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    lines += ["", f"The full table is in `{setup.csv_dir / 'results.csv'}`.", ""]
    return "\n".join(lines)
