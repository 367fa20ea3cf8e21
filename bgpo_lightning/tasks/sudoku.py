"""4x4 Sudoku (2x2 boxes) with the d1 cell-accuracy reward."""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Collection, Mapping
from typing import Any

from bgpo_lightning.tasks import d1_prompts
from bgpo_lightning.tasks.base import (
    Example,
    RowError,
    Task,
    check_template,
    collect_distinct,
    extract_answer,
    require_key,
)
from bgpo_lightning.tasks.d1_mode import check_decoding, check_reward_mode
from bgpo_lightning.tasks.d1_sudoku import d1_sudoku_reward

SIZE = 4
CELLS = SIZE * SIZE

# Short on purpose: for a character-level policy (the embedded default answers 16 digits).
SHORT_PROMPT = "Sudoku {puzzle}="
D1_PROMPT = d1_prompts.SUDOKU_PROMPT
D1_TARGET = d1_prompts.ANSWER_TARGET

_FIELDS = ("puzzle", "solution")
_GROUPS: tuple[tuple[int, ...], ...] = (
    *(tuple(r * SIZE + c for c in range(SIZE)) for r in range(SIZE)),
    *(tuple(r * SIZE + c for r in range(SIZE)) for c in range(SIZE)),
    *(
        tuple((br + r) * SIZE + bc + c for r in range(2) for c in range(2))
        for br in (0, 2)
        for bc in (0, 2)
    ),
)
_DIGITS = frozenset("1234")


def is_valid_solution(grid: str) -> bool:
    """True if ``grid`` is 16 digits 1-4 with every row, column and 2x2 box a permutation."""
    return (
        len(grid) == CELLS
        and set(grid) <= _DIGITS
        and all({grid[i] for i in group} == _DIGITS for group in _GROUPS)
    )


def fits(puzzle: str, grid: str) -> bool:
    """True if ``grid`` agrees with every given (non-zero) cell of ``puzzle``."""
    return all(p in ("0", g) for p, g in zip(puzzle, grid, strict=True))


@functools.cache
def all_grids() -> tuple[str, ...]:
    """All 288 valid 4x4 grids, in lexicographic order (enumerated once, then cached)."""
    grids: list[str] = []

    def extend(prefix: str) -> None:
        if len(prefix) == CELLS:
            grids.append(prefix)
            return
        cell = len(prefix)
        taken = {prefix[i] for group in _GROUPS if cell in group for i in group if i < cell}
        for digit in "1234":
            if digit not in taken:
                extend(prefix + digit)

    extend("")
    return tuple(grids)


def count_solutions(puzzle: str) -> int:
    """Number of valid grids consistent with ``puzzle`` (cheap: only 288 grids exist)."""
    # A regex with "." for empty cells checks a grid in C, ~10x faster than fits().
    pattern = re.compile(puzzle.replace("0", "."))
    return sum(1 for grid in all_grids() if pattern.fullmatch(grid))


def answer_digits(completion: str) -> str:
    """The first 16 ASCII digits of the completion's answer, separators ignored."""
    answer = extract_answer(completion)
    # ASCII only: str.isdigit() also accepts e.g. superscripts, which are not Sudoku digits.
    return "".join(ch for ch in answer if "0" <= ch <= "9")[:CELLS]


def lenient_reward(completion: str, puzzle: str, solution: str) -> float:
    """Fraction of the empty cells whose answer digit is correct, leniently read.

    Digits are read in order from the answer (see :func:`answer_digits`: untagged and
    unclosed answers count); cells past the last digit count as wrong. A puzzle without
    empty cells (not produced by load/generate) is scored on all cells to stay defined.
    """
    empty = [i for i, p in enumerate(puzzle) if p == "0"] or list(range(CELLS))
    digits = answer_digits(completion)
    correct = sum(i < len(digits) and digits[i] == solution[i] for i in empty)
    return correct / len(empty)


class SudokuTask(Task):
    """4x4 Sudoku; the reward is the fraction of the puzzle's empty cells filled correctly.

    Args:
        prompt_template: Prompt format with placeholder ``{puzzle}`` (``{solution}`` is
            allowed but leaks the answer). Default: d1's exact prompt; :data:`SHORT_PROMPT`
            suits character-level models.
        target_template: SFT response format with ``{solution}`` (and optionally
            ``{puzzle}``). Default: ``"<answer>\\n{solution}\\n</answer>"``, d1's layout.
        decoding: ``"first_eos"`` (default: text after the model's end-of-text is not part
            of its answer) or ``"full"``: the whole fixed-length response, special tokens
            skipped, as d1 decodes it (use it for paper comparisons).
        reward_mode: ``"d1"``: exactly d1's reward (see
            :func:`~bgpo_lightning.tasks.d1_sudoku.d1_sudoku_reward`). ``"lenient"``: the
            first 16 ASCII digits of the answer, untagged or unclosed answers included.
        min_empty: Fewest empty cells in generated puzzles.
        max_empty: Most empty cells in generated puzzles.
        unique_solution: Generate only puzzles with exactly one solution, so a correct solve
            always matches the reference solution and earns the full reward.
    """

    name = "sudoku"

    def __init__(
        self,
        prompt_template: str = D1_PROMPT,
        target_template: str = D1_TARGET,
        min_empty: int = 6,
        max_empty: int = 10,
        unique_solution: bool = True,
        reward_mode: str = "d1",
        decoding: str = "first_eos",
    ) -> None:
        if not 1 <= min_empty <= max_empty <= CELLS:
            raise ValueError(
                f"need 1 <= min_empty <= max_empty <= {CELLS}, got {min_empty}, {max_empty}"
            )
        self.prompt_template = check_template(
            prompt_template, kind="prompt_template", allowed=_FIELDS, required=("puzzle",)
        )
        self.target_template = check_template(
            target_template, kind="target_template", allowed=_FIELDS, required=("solution",)
        )
        self.min_empty = min_empty
        self.max_empty = max_empty
        self.unique_solution = unique_solution
        self.reward_mode = check_reward_mode(reward_mode)
        self.cut_at_eos = check_decoding(decoding) == "first_eos"

    def make_example(self, puzzle: str, solution: str) -> Example:
        """Builds the example of an already validated puzzle and solution."""
        fields = {"puzzle": puzzle, "solution": solution}
        return Example(
            prompt=self.prompt_template.format(**fields),
            target=self.target_template.format(**fields),
            meta=fields,
        )

    def reward(self, completion: str, example: Example) -> float:
        """Fraction of the empty cells whose answer digit is correct, per ``reward_mode``."""
        puzzle, solution = example.meta["puzzle"], example.meta["solution"]
        if self.reward_mode == "d1":
            return d1_sudoku_reward(completion, puzzle, solution)
        return lenient_reward(completion, puzzle, solution)

    def accuracy(self, completion: str, example: Example) -> float:
        """Cell accuracy over the empty cells, as d1 reports it (equal to the reward)."""
        return self.reward(completion, example)

    def parse_row(self, row: Mapping[str, Any]) -> Example:
        """Validates ``{"puzzle": "16 digits, 0 = empty", "solution": "16 digits"}``."""
        puzzle = require_key(row, "puzzle")
        solution = require_key(row, "solution")
        for key, value, digits in (("puzzle", puzzle, "01234"), ("solution", solution, "1234")):
            if not isinstance(value, str):
                raise RowError(f"key {key!r} must be a string, got {type(value).__name__}")
            if len(value) != CELLS or not set(value) <= set(digits):
                raise RowError(f"key {key!r} must be {CELLS} digits from {digits}, got {value!r}")
        if not is_valid_solution(solution):
            raise RowError(f"key 'solution' is not a valid 4x4 sudoku grid: {solution!r}")
        if not fits(puzzle, solution):
            raise RowError("key 'puzzle' disagrees with 'solution' on a given cell")
        if "0" not in puzzle:
            raise RowError("key 'puzzle' has no empty cell")
        return self.make_example(puzzle, solution)

    def generate(self, n: int, seed: int, exclude: Collection[str] = frozenset()) -> list[Example]:
        """Blanks random cells of random valid grids; see :meth:`Task.generate`."""
        rng = random.Random(seed)
        grids = all_grids()

        def sample() -> Example | None:
            solution = rng.choice(grids)
            blanks = set(rng.sample(range(CELLS), rng.randint(self.min_empty, self.max_empty)))
            puzzle = "".join("0" if i in blanks else d for i, d in enumerate(solution))
            if self.unique_solution and count_solutions(puzzle) != 1:
                return None
            return self.make_example(puzzle, solution)

        return collect_distinct(n, sample, exclude)
