"""The d1 prompt texts and the SFT targets that go with them."""

from __future__ import annotations

import hashlib

import pytest

from bgpo_lightning.tasks import CountdownTask, SudokuTask
from bgpo_lightning.tasks.d1_prompts import SUDOKU_SYSTEM_PROMPT, SYSTEM_PROMPT


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_countdown_default_prompt_is_d1s() -> None:
    ex = CountdownTask().make_example([44, 19, 35], 98, "44+19+35")
    assert ex.prompt.startswith(SYSTEM_PROMPT + "\nUsing only the numbers [44, 19, 35], ")
    assert "evaluates to exactly 98. " in ex.prompt
    assert ex.prompt.endswith("a valid answer is: <answer>\n2*4-3\n</answer>")
    # Checked equal to d1's f-string (data_utils.py at 837888f, rendered with nums
    # [44, 19, 35] and target 98) when this was written.
    assert sha256(ex.prompt) == "247b52abb5f3588a664ea83f0b8ea6caab764d5d66df266b725a7bea7537c83f"


def test_sudoku_default_prompt_is_d1s() -> None:
    ex = SudokuTask().make_example("3102200002100320", "3142243142131324")
    puzzle_line = "\n\nSolve the following Sudoku puzzle: 3102200002100320\n"
    assert ex.prompt == SUDOKU_SYSTEM_PROMPT + puzzle_line
    # Checked equal to d1's f-string at 837888f when this was written.
    assert sha256(ex.prompt) == "d745579cb96531c6ef2abe3030ce8c2f3b3662cdead3cd53c56a706d337125e8"
    assert SYSTEM_PROMPT not in ex.prompt  # d1 uses the Sudoku system prompt instead


def test_default_targets_are_d1_answers_that_score_full() -> None:
    countdown = CountdownTask()
    ex = countdown.make_example([3, 5, 2], 16, "(3+5)*2")
    assert ex.target == "<answer>\n(3+5)*2\n</answer>"
    assert countdown.reward(ex.target, ex) == 1.0
    sudoku = SudokuTask()
    ex = sudoku.make_example("3102200002100320", "3142243142131324")
    assert ex.target == "<answer>\n3142243142131324\n</answer>"
    assert sudoku.reward(ex.target, ex) == 1.0


def test_generated_and_solved_targets_score_full_in_d1_mode() -> None:
    countdown = CountdownTask(num_numbers=(3, 4))
    for ex in countdown.generate(100, seed=0):
        assert countdown.reward(ex.target, ex) == 1.0
    sudoku = SudokuTask()
    for ex in sudoku.generate(50, seed=0):
        assert sudoku.reward(ex.target, ex) == 1.0


@pytest.mark.parametrize("task_class", [CountdownTask, SudokuTask])
def test_decoding_option(task_class):
    assert task_class().cut_at_eos
    assert not task_class(decoding="full").cut_at_eos
    with pytest.raises(ValueError, match="decoding must be one of"):
        task_class(decoding="last_eos")
