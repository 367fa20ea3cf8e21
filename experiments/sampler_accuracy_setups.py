"""Where the sampler accuracy check runs (``experiments.sampler_accuracy --setup``): a policy,
its task format and reward, the sampler shape and rollout temperature, the held-out split,
and where the report goes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.paper_claims.entry import CONFIGS
from experiments.paper_claims.entry import ROOT as STUDY_ROOT
from experiments.paper_claims.prepare import data_dir, tokenizer_dir
from experiments.paper_claims.warm_start import warm_start_dir

DOC = Path("docs/sampler_accuracy.md")
CSV_DIR = Path("docs/sampler_accuracy")
D1_TEST = Path("../shared/datasets/sudoku/test.jsonl")
TASK_KWARGS = {
    "prompt_template": "Sudoku {puzzle}=",
    "target_template": "{solution}",
    "reward_mode": "lenient",
}
"""The compact format and reward of ``experiments/configs/sudoku_bgpo.yaml``."""
SHAPE = {"gen_length": 16, "block_length": 8, "steps": 8}
"""The embedded default's sampler shape."""


@dataclass(frozen=True)
class Setup:
    """A policy, task and sampler shape to check the modes on, and where the report goes.

    Attributes:
        name: ``--setup`` value.
        warm_start: Hugging Face checkpoint directory of the policy.
        build_hint: How to build a missing warm start (the error message says it).
        policy: The report's policy line.
        task_kwargs: Task arguments (empty: d1's prompt and reward).
        shape: ``gen_length``, ``block_length`` and ``steps`` of every mode's sampler.
        temperature: Rollout temperature (greedy accuracy always uses 0.0).
        generated_test: Whether to measure the embedded default's generated test split.
        d1_test: d1's Sudoku test rows (JSON lines). Optional when ``generated_test`` is set
            (skipped if missing or with ``--no-d1``), else required.
        d1_note: The report's note on that split; ``{n}`` and ``{path}`` are filled in.
        doc: Markdown report.
        csv_dir: Folder of ``results.csv``.
        tokenizer: Tokenizer directory; None: the warm start's own.
        dtype: ``PolicySpec.dtype`` to load the weights as; None keeps the checkpoint's.
        sampler_source: Where shape and temperature come from, for the report ("" for none).
        task: The task's registry name.
        item: What one prompt of the task is called in the report.
        accuracy_unit: What the accuracy and reward points are a percent of.
    """

    name: str
    warm_start: Path
    build_hint: str
    policy: str
    task_kwargs: Mapping[str, Any]
    shape: Mapping[str, int]
    temperature: float
    generated_test: bool
    d1_test: Path
    d1_note: str
    doc: Path
    csv_dir: Path
    tokenizer: Path | None = None
    dtype: str | None = None
    sampler_source: str = ""
    task: str = "sudoku"
    item: str = "puzzle"
    accuracy_unit: str = "percent of the empty cells"


EMBEDDED_DEFAULT = Setup(
    name="embedded-default",
    warm_start=Path("runs/embedded_default/seed_0/warmstart"),
    build_hint="run python -m experiments.embedded_default",
    policy="the Sudoku SFT warm start of the embedded default "
    "(`runs/embedded_default/seed_0/warmstart`), compact template `Sudoku {puzzle}=`, "
    "lenient reward.",
    task_kwargs=TASK_KWARGS,
    shape=SHAPE,
    temperature=1.0,
    generated_test=True,
    d1_test=D1_TEST,
    d1_note="the first {n} rows of `{path}` (d1's 4x4_test_sudoku.csv), formatted with the "
    "compact template; these puzzles are not guaranteed disjoint from the generated SFT "
    "training puzzles.",
    doc=DOC,
    csv_dir=CSV_DIR,
)
"""The embedded default's tiny warm start, as ``experiments/configs/sudoku_bgpo.yaml``."""


def study_setup(task: str, size: str, d1_file: str, doc: str, **fields: Any) -> Setup:
    """The small-scale study's warm start of ``task`` (issue 13) with d1's prompt and reward
    and the rollout sampler of its RL config (``<task>_rl.yaml``)."""
    warm_start = warm_start_dir(STUDY_ROOT, task)
    return Setup(
        name=f"study-{task}",
        task=task,
        warm_start=warm_start,
        build_hint="run python -m experiments.paper_claims.prepare and "
        f"python -m experiments.paper_claims.warm_start --task {task}",
        policy=f"the small-scale study's {task.capitalize()} SFT warm start (`{warm_start}`: "
        f"the {size}-parameter LLaDA-shaped model of "
        f"`{CONFIGS / f'{task}_sft.yaml'}`, bfloat16 weights loaded as float32, BPE tokenizer "
        f"`{tokenizer_dir(STUDY_ROOT)}`), d1's prompt and answer format and d1's reward (the "
        f"`{task}` task's defaults, as the study's RL config).",
        tokenizer=tokenizer_dir(STUDY_ROOT),
        dtype="float32",
        task_kwargs={},
        shape={"gen_length": 32, "block_length": 16, "steps": 16},
        temperature=0.9,
        sampler_source="Shape and rollout temperature are the rollout sampler of "
        f"`{CONFIGS / f'{task}_rl.yaml'}`.",
        generated_test=False,
        d1_test=data_dir(STUDY_ROOT, task) / "test.jsonl",
        d1_note="the first {n} rows of `{path}`, the small-scale study's test split "
        f"({d1_file}), with d1's prompt; neither the SFT (train and val files) nor the "
        "study's model selection uses them.",
        doc=Path(f"docs/{doc}.md"),
        csv_dir=Path(f"docs/{doc}"),
        **fields,
    )


STUDY_SUDOKU = study_setup("sudoku", "11M", "d1's 4x4_test_sudoku.csv", "sampler_accuracy_study")
STUDY_COUNTDOWN = study_setup(
    "countdown",
    "28M",
    "d1's Countdown test set",
    "sampler_accuracy_countdown",
    item="problem",
    accuracy_unit="percent of the problems solved; the reward is d1's: 1 solved, 0.1 formatted",
)

SETUPS: dict[str, Setup] = {s.name: s for s in (EMBEDDED_DEFAULT, STUDY_SUDOKU, STUDY_COUNTDOWN)}
