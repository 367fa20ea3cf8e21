"""What to download: one entry per output file, with its source and its row converter."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from experiments.data import rows
from experiments.data.rows import Converter

# d1's own splits live in its GitHub repository, not on the Hub. Pinned to the commit whose
# files were checked, so the download cannot change under us.
D1_COMMIT = "837888f22c21a5da91a0af2b0d7b19e81d9b47ec"
D1_FILES = f"https://raw.githubusercontent.com/dllm-reasoning/d1/{D1_COMMIT}/dataset/"

# The Countdown and Sudoku training sources are much larger than ../shared/datasets' 20000-row
# train files, which are their first 20000 rows.
TRAIN_ROWS = 20_000


@dataclass(frozen=True)
class Source:
    """Arguments of ``datasets.load_dataset``.

    Attributes:
        path: A Hub dataset id, or a packaged builder (``"json"``, ``"csv"``) for ``data_files``.
        config: The Hub dataset's config, if it has several.
        split: The split to load (``"train"`` for ``data_files``, as ``datasets`` names it).
        data_files: URL of a file read by the ``path`` builder.
        text_columns: CSV columns to read as strings, not numbers.
    """

    path: str
    config: str | None = None
    split: str = "train"
    data_files: str | None = None
    text_columns: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.data_files:
            return self.data_files
        return ":".join(p for p in (self.path, self.config, self.split) if p)


@dataclass(frozen=True)
class SplitSpec:
    """One output file: ``<dataset>/<split>.jsonl``, from ``limit`` rows of ``source``."""

    dataset: str
    split: str
    source: Source
    convert: Converter
    limit: int | None = None

    @property
    def relpath(self) -> Path:
        return Path(self.dataset, f"{self.split}.jsonl")

    @property
    def label(self) -> str:
        """``"<dataset> <split> (<source>)"``, for messages."""
        return f"{self.dataset} {self.split} ({self.source})"


def _mbpp(split: str) -> SplitSpec:
    source = Source("google-research-datasets/mbpp", "full", split)
    return SplitSpec("mbpp", split, source, rows.mbpp)


def _sudoku_d1(split: str, filename: str, limit: int | None = None) -> SplitSpec:
    source = Source("csv", data_files=D1_FILES + filename, text_columns=("Puzzle", "Solution"))
    return SplitSpec("sudoku", split, source, rows.sudoku_d1, limit=limit)


SPLITS: tuple[SplitSpec, ...] = (
    SplitSpec("gsm8k", "train", Source("openai/gsm8k", "main", "train"), rows.gsm8k),
    SplitSpec("gsm8k", "test", Source("openai/gsm8k", "main", "test"), rows.gsm8k),
    SplitSpec(
        "math",
        "train",
        Source("DigitalLearningGmbH/MATH-lighteval", "default", "train"),
        rows.math_solution,
    ),
    SplitSpec("math500", "test", Source("HuggingFaceH4/MATH-500", None, "test"), rows.math_answer),
    SplitSpec(
        "countdown",
        "train",
        Source("Jiayi-Pan/Countdown-Tasks-3to4", None, "train"),
        rows.countdown_hub,
        limit=TRAIN_ROWS,
    ),
    SplitSpec(
        "countdown",
        "test",
        Source("json", data_files=D1_FILES + "countdown_cd3_test.jsonl"),
        rows.countdown_d1,
    ),
    _sudoku_d1("train", "4x4_sudoku_unique_puzzles.csv", limit=TRAIN_ROWS),
    _sudoku_d1("test", "4x4_test_sudoku.csv"),
    *(_mbpp(split) for split in ("train", "validation", "test", "prompt")),
)

DATASETS: tuple[str, ...] = tuple(dict.fromkeys(spec.dataset for spec in SPLITS))
