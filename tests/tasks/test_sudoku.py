"""Tests for the 4x4 Sudoku task: grids, lenient reward, generation, the real d1 test split.

d1's exact reward (the default) is tabulated in test_d1_sudoku.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bgpo_lightning.tasks import SudokuTask
from bgpo_lightning.tasks.sudoku import (
    D1_PROMPT,
    SHORT_PROMPT,
    all_grids,
    count_solutions,
    fits,
    is_valid_solution,
)

REAL_TEST = Path("/work/shared/datasets/sudoku/test.jsonl")

PUZZLE = "3102200002100320"  # 8 empty cells
SOLUTION = "3142243142131324"
EMPTY = [i for i, p in enumerate(PUZZLE) if p == "0"]


# The embedded default's settings (pinned in experiments/configs/sudoku_*.yaml).
LENIENT = dict(prompt_template=SHORT_PROMPT, target_template="{solution}", reward_mode="lenient")


@pytest.fixture(scope="module")
def task() -> SudokuTask:
    return SudokuTask(**LENIENT)


@pytest.fixture(scope="module")
def example(task: SudokuTask):
    return task.make_example(PUZZLE, SOLUTION)


def _with_cells(grid: str, cells: list[int], digit_of) -> str:
    return "".join(digit_of(c) if i in cells else c for i, c in enumerate(grid))


def test_grid_enumeration() -> None:
    grids = all_grids()
    assert len(grids) == 288 == len(set(grids))
    assert all(is_valid_solution(g) for g in grids)
    assert all_grids() is grids  # cached
    assert not is_valid_solution("1234123412341234")  # rows fine, columns repeat
    assert not is_valid_solution("1234341221434321"[:15])


def test_count_solutions_matches_brute_force() -> None:
    assert count_solutions(SOLUTION) == 1
    assert count_solutions("0" * 16) == 288
    for puzzle in ("3102200002100320", "1000000000000000", "0140432014020000"):
        assert count_solutions(puzzle) == sum(fits(puzzle, g) for g in all_grids())


def test_short_prompt(example) -> None:
    assert SHORT_PROMPT == "Sudoku {puzzle}="
    assert example.prompt == f"Sudoku {PUZZLE}="
    assert example.target == SOLUTION
    assert dict(example.meta) == {"puzzle": PUZZLE, "solution": SOLUTION}


def test_d1_prompt_and_tagged_target() -> None:
    task = SudokuTask()
    assert task.prompt_template == D1_PROMPT and task.reward_mode == "d1"
    ex = task.make_example(PUZZLE, SOLUTION)
    assert PUZZLE in ex.prompt and "<answer>" in ex.prompt
    assert ex.target == f"<answer>\n{SOLUTION}\n</answer>"
    assert task.reward(ex.target, ex) == 1.0
    with pytest.raises(ValueError, match="reward_mode"):
        SudokuTask(reward_mode="d2")


def test_modes_differ_where_the_audit_found(example) -> None:
    d1, lenient = SudokuTask(), SudokuTask(**LENIENT)
    for completion, d1_score, lenient_score in [
        (SOLUTION, 0.0, 1.0),  # untagged digits
        (f"<answer>{SOLUTION}", 0.0, 1.0),  # unclosed
        (f"<answer>{SOLUTION}</answer>", 1.0, 1.0),
    ]:
        assert (d1.reward(completion, example), lenient.reward(completion, example)) == (
            d1_score,
            lenient_score,
        )


@pytest.mark.parametrize(
    "completion",
    [
        SOLUTION,
        f"<answer>{SOLUTION}</answer>",
        "<reasoning>row 1 ...</reasoning><answer>\n3142\n2431\n4213\n1324\n</answer>",
        "<answer>3 1 4 2 | 2 4 3 1 | 4 2 1 3 | 1 3 2 4</answer>",
        "<answer>3,1,4,2,2,4,3,1,4,2,1,3,1,3,2,4</answer> trailing 9999",
        f"<answer>0000</answer><answer>{SOLUTION}",  # last, unclosed tag wins
        SOLUTION + "1234",  # extra digits after the first 16 are ignored
    ],
)
def test_full_reward(task: SudokuTask, example, completion: str) -> None:
    assert task.reward(completion, example) == 1.0
    assert task.accuracy(completion, example) == 1.0


def test_only_empty_cells_count(task: SudokuTask, example) -> None:
    # Given cells wrong, empty cells right: still full reward (d1 scores only the blanks).
    givens = [i for i in range(16) if i not in EMPTY]
    wrong_givens = _with_cells(SOLUTION, givens, lambda c: "9")
    assert task.reward(wrong_givens, example) == 1.0
    # Echoing the puzzle fills nothing.
    assert task.reward(PUZZLE, example) == 0.0


@pytest.mark.parametrize("k", [1, 3, 5, 8])
def test_partial_reward_is_fraction_of_empty_cells(task: SudokuTask, example, k: int) -> None:
    wrong = EMPTY[:k]
    completion = _with_cells(SOLUTION, wrong, lambda c: "1" if c != "1" else "2")
    assert task.reward(completion, example) == pytest.approx((len(EMPTY) - k) / len(EMPTY))
    assert task.accuracy(completion, example) == task.reward(completion, example)


def test_short_answers_count_missing_cells_wrong(task: SudokuTask, example) -> None:
    first_half = SOLUTION[:8]
    expected = sum(i < 8 for i in EMPTY) / len(EMPTY)
    assert task.reward(f"<answer>{first_half}</answer>", example) == pytest.approx(expected)


@pytest.mark.parametrize(
    "completion",
    [
        "",
        "<answer></answer>",
        "<answer>",
        "</answer><answer",
        "no digits at all",
        "٣١٤٢٢٤٣١٤٢١٣١٣٢٤",  # Arabic-Indic digits are not read as digits
        "³¹⁴²" * 4,  # superscripts: isdigit() is True but they are not answers
        "9" * 5000,
        "-5.5e50 " * 100,
        "<answer>" * 1000,
        "\x00\ud800",
    ],
    ids=[
        "empty",
        "empty-tags",
        "open-tag",
        "broken-tags",
        "words",
        "arabic-digits",
        "superscripts",
        "huge-number",
        "floats",
        "many-tags",
        "nul-surrogate",
    ],
)
def test_malformed_completions_never_raise(task: SudokuTask, example, completion: str) -> None:
    assert task.reward(completion, example) == 0.0


def test_digits_mixed_with_unicode_are_read_in_order(task: SudokuTask, example) -> None:
    noisy = "".join(f"{d}\u00a0→" for d in SOLUTION)
    assert task.reward(noisy, example) == 1.0


def test_generate_is_deterministic_distinct_and_valid() -> None:
    task = SudokuTask(min_empty=6, max_empty=10, **LENIENT)
    a = task.generate(300, seed=1)
    assert a == task.generate(300, seed=1)
    b = task.generate(300, seed=2)
    assert [e.prompt for e in a] != [e.prompt for e in b]
    assert len({e.prompt for e in a}) == 300
    empties = set()
    for ex in a:
        puzzle, solution = ex.meta["puzzle"], ex.meta["solution"]
        assert is_valid_solution(solution) and fits(puzzle, solution)
        assert count_solutions(puzzle) == 1  # unique_solution=True by default
        empties.add(puzzle.count("0"))
        assert ex.prompt == f"Sudoku {puzzle}=" and ex.target == solution
        assert task.reward(ex.target, ex) == 1.0
    assert empties == set(range(6, 11))


def test_generate_exclude_makes_splits_disjoint() -> None:
    task = SudokuTask()
    train = task.generate(200, seed=0)
    val = task.generate(200, seed=0, exclude={e.prompt for e in train})
    assert not {e.prompt for e in train} & {e.prompt for e in val}


def test_generate_without_uniqueness_allows_ambiguous_puzzles() -> None:
    task = SudokuTask(min_empty=12, max_empty=12, unique_solution=False)
    assert any(count_solutions(e.meta["puzzle"]) > 1 for e in task.generate(50, seed=0))


def test_generate_raises_when_space_exhausted() -> None:
    # 16 empty cells: a single possible puzzle, and it is ambiguous anyway.
    with pytest.raises(ValueError, match="could only generate"):
        SudokuTask(min_empty=16, max_empty=16, unique_solution=False).generate(2, seed=0)


@pytest.mark.parametrize(("lo", "hi"), [(0, 5), (7, 6), (5, 17)])
def test_invalid_empty_range(lo: int, hi: int) -> None:
    with pytest.raises(ValueError, match="min_empty"):
        SudokuTask(min_empty=lo, max_empty=hi)


@pytest.mark.skipif(not REAL_TEST.is_file(), reason="shared d1 Sudoku data not available")
def test_real_test_split_loads_and_solutions_score_one(task: SudokuTask) -> None:
    examples = task.load(REAL_TEST)
    assert len(examples) == 500
    for ex in examples:
        assert task.reward(ex.meta["solution"], ex) == 1.0
        assert task.reward(f"<answer>{ex.target}</answer>", ex) == 1.0
        assert task.reward(ex.meta["puzzle"], ex) == 0.0
    d1 = SudokuTask()
    for ex in d1.load(REAL_TEST):
        assert d1.reward(ex.target, ex) == 1.0  # "<answer>\n...\n</answer>"
        assert d1.reward(ex.meta["solution"], ex) == 0.0  # untagged
