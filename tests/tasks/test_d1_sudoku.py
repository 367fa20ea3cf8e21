"""d1's Sudoku reward, row by row, from reading diffu-grpo/reward_func.py.

d1 (extract_answer_sudoku + validate_sudoku_solution): answer = last match of
``<answer>(.*?)</answer>`` (DOTALL), stripped; None -> 0. Keep its characters with
``str.isdigit()`` (Unicode); none -> 0. Pad with "0" / cut to 16, then score the fraction
of the puzzle's "0" cells whose character equals the solution's; no "0" cell -> 0.
"""

from __future__ import annotations

import pytest

from bgpo_lightning.tasks import Example, SudokuTask
from bgpo_lightning.tasks.d1_sudoku import d1_sudoku_reward

P = "3102200002100320"  # empty cells 2, 5, 6, 7, 8, 11, 12, 15 (8 of them)
S = "3142243142131324"
P10 = "0002000000100320"  # givens at 3, 10, 13, 14: 12 empty cells
GRID = "\n".join(S[i : i + 4] for i in range(0, 16, 4))


def tag(body: str) -> str:
    return f"<answer>{body}</answer>"


def with_cells(cells: dict[int, str], grid: str = S) -> str:
    return "".join(cells.get(i, c) for i, c in enumerate(grid))


# (completion, puzzle, solution, d1 reward)
TABLE = [
    # --- tags ---
    (S, P, S, 0.0),  # untagged digits: no match -> None -> 0
    ("Answer: " + S, P, S, 0.0),
    ("<answer>" + S, P, S, 0.0),  # unclosed
    (S + "</answer>", P, S, 0.0),  # close without open
    ("<ANSWER>" + S + "</ANSWER>", P, S, 0.0),  # case-sensitive
    ("<answer>" + S + "</ answer>", P, S, 0.0),
    ("<answer >" + S + "</answer>", P, S, 0.0),
    (tag(S), P, S, 1.0),
    (tag(""), P, S, 0.0),  # empty answer -> "" -> 0
    (tag(" \n\t "), P, S, 0.0),
    (tag("no digits here"), P, S, 0.0),
    (S + tag(""), P, S, 0.0),  # digits outside the tag never count
    (tag(S) + " 9999 " + P, P, S, 1.0),  # nor after it
    ("<reasoning>\nrow 1: 3 1 _ 2\n</reasoning>\n" + tag("\n" + S + "\n"), P, S, 1.0),
    (tag("0000") + tag(S), P, S, 1.0),  # the last match wins
    (tag(S) + tag("0000"), P, S, 0.0),  # ... even when worse: "0000" fills nothing
    (tag(S) + "<answer>", P, S, 1.0),  # a trailing open tag never matches
    ("<answer>" * 1000 + S + "</answer>", P, S, 1.0),  # one span: tags hold no digits
    (tag("1") * 100 + tag(S), P, S, 1.0),
    # The span runs from the first open tag: digits "12" + S, shifted right by two, so
    # cell i holds S[i - 2]: cells 2,5,6,7,8,11,12,15 get 3,2,4,3,1,2,1,1 vs 4,4,3,1,4,3,1,4:
    # only cell 12 (1 == 1) is right -> 1/8.
    ("<answer>12<answer>" + S + "</answer>", P, S, 0.125),
    # --- layouts and whitespace ---
    (tag("\n" + GRID + "\n"), P, S, 1.0),  # multi-line grid
    (tag("\r\n" + GRID.replace("\n", "\r\n") + "\r\n"), P, S, 1.0),
    (tag("\t" + S + "\t"), P, S, 1.0),
    (tag(" ".join(S)), P, S, 1.0),
    (tag("3142-2431-4213-1324"), P, S, 1.0),
    (tag("[[3,1,4,2],[2,4,3,1],[4,2,1,3],[1,3,2,4]]"), P, S, 1.0),
    (tag("| 3 1 | 4 2 |\n| 2 4 | 3 1 |\n| 4 2 | 1 3 |\n| 1 3 | 2 4 |"), P, S, 1.0),
    (tag(S + "1234"), P, S, 1.0),  # cut to 16
    # "1234" + S[:12]: cell i holds S[i - 4] for i >= 4; cell 2 holds "3". Cells
    # 2,5,6,7,8,11,12,15 get 3,1,4,2,2,1,4,3 vs 4,4,3,1,4,3,1,4: none right -> 0.
    (tag("1234" + S), P, S, 0.0),
    # --- partial answers: missing cells are padded with "0", which is always wrong ---
    (tag(S[:8]), P, S, 0.5),  # empty cells 2, 5, 6, 7 present -> 4/8
    (tag(S[:15]), P, S, 0.875),  # cell 15 missing -> 7/8
    (tag(S[:3]), P, S, 0.125),  # only cell 2 -> 1/8
    (tag(S[:2]), P, S, 0.0),
    (tag("-5.5e50"), P, S, 0.0),  # digits 5550: cell 2 gets "5", not "4"
    # --- wrong cells ---
    (tag(P), P, S, 0.0),  # echoing the puzzle fills nothing
    (tag(with_cells({0: "9", 1: "9", 3: "9"})), P, S, 1.0),  # givens are not scored
    (tag(with_cells({2: "1"})), P, S, 0.875),
    (tag(with_cells({2: "1", 5: "1", 6: "1"})), P, S, 0.625),
    (tag(with_cells(dict.fromkeys((2, 5, 6, 7, 8, 11, 12, 15), "2"))), P, S, 0.0),
    # --- Unicode: isdigit() keeps these, so they take a cell but never equal "1"-"4" ---
    (tag(with_cells({2: "\u00b3"})), P, S, 0.875),  # superscript three in cell 2
    (tag(with_cells({0: "\u0663"})), P, S, 1.0),  # Arabic-Indic 3 in a given cell
    (tag("".join(chr(0x0660 + int(d)) for d in S)), P, S, 0.0),  # all Arabic-Indic
    (tag(with_cells({2: "\uff14"})), P, S, 0.875),  # fullwidth 4 is not "4"
    (tag("\u00bd" + S), P, S, 1.0),  # "1/2" sign: isdigit() is False, dropped
    # --- other puzzles ---
    (tag(S), S, S, 0.0),  # no empty cell: d1 returns 0.0
    # P10: cells 0 ("3") and 4 ("2") answered "4", the other 10 empty cells right -> 10/12.
    (tag(with_cells({0: "4", 4: "4"})), P10, S, 10 / 12),
]


@pytest.mark.parametrize(("completion", "puzzle", "solution", "expected"), TABLE)
def test_reward_matches_d1(completion: str, puzzle: str, solution: str, expected: float) -> None:
    assert d1_sudoku_reward(completion, puzzle, solution) == pytest.approx(expected, abs=1e-12)
    task = SudokuTask()  # d1 is the default mode
    example = Example(prompt="", target="", meta={"puzzle": puzzle, "solution": solution})
    assert task.reward(completion, example) == pytest.approx(expected, abs=1e-12)
    assert task.accuracy(completion, example) == task.reward(completion, example)


def test_table_is_large_enough() -> None:
    assert len(TABLE) >= 40


def test_many_open_tags_are_linear() -> None:
    assert d1_sudoku_reward("<answer>" * 100_000 + S, P, S) == 0.0
