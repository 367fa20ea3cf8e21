"""d1's Sudoku reward (``sudoku_reward_func`` of diffu-grpo/reward_func.py)."""

from __future__ import annotations

from bgpo_lightning.tasks.d1_answer import last_closed_answer

CELLS = 16


def d1_sudoku_reward(completion: str, puzzle: str, solution: str) -> float:
    """Fraction of the puzzle's empty cells that the last closed answer fills correctly.

    As d1: only a closed answer tag counts (else 0.0); its characters with
    ``str.isdigit()`` (Unicode, so e.g. superscripts occupy a cell but never match) are read
    in order, cut to 16, and missing cells count as wrong. A puzzle without empty cells
    scores 0.0.
    """
    answer = last_closed_answer(completion)
    if answer is None:
        return 0.0
    digits = "".join(ch for ch in answer if ch.isdigit())[:CELLS]
    empty = [i for i, p in enumerate(puzzle[:CELLS]) if p == "0"]
    if not digits or not empty:
        return 0.0
    correct = sum(i < len(digits) and digits[i] == solution[i] for i in empty)
    return correct / len(empty)
