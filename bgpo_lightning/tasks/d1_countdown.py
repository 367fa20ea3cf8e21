"""d1's Countdown reward (``compute_score`` of diffu-grpo/reward_func.py), without ``eval``."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bgpo_lightning.tasks.d1_answer import last_closed_answer
from bgpo_lightning.tasks.safe_arith import evaluate_python

SCORE = 1.0
FORMAT_SCORE = 0.1

# d1's patterns, deliberately Unicode: its \d and \s also match e.g. Arabic-Indic digits and
# no-break spaces (such text passes these checks, then fails to parse, scoring 0.1).
_NUMBER = re.compile(r"\d+")
_ALLOWED = re.compile(r"[\d+\-*/().\s]+")


def d1_countdown_reward(completion: str, numbers: Sequence[int], target: int) -> float:
    """1.0 if the last closed answer uses exactly ``numbers`` and evaluates to ``target``.

    As d1: no closed answer tag scores 0.0; any other failure (wrong or missing numbers, an
    empty answer, ``= target`` appended, characters beyond digits, ``+-*/().`` and
    whitespace, a syntax or arithmetic error, a value 1e-5 or more off) scores 0.1.
    Evaluation follows Python's ``eval``, so ``**``, ``//`` and unary ``+`` count, and ``/``
    is float division.
    """
    equation = last_closed_answer(completion)
    if equation is None:
        return 0.0
    if not _same_numbers(equation, numbers) or not _ALLOWED.fullmatch(equation):
        return FORMAT_SCORE
    try:
        value = evaluate_python(equation)
        # d1 compares whatever eval returned; a non-number raises there, as here.
        return SCORE if abs(value - target) < 1e-5 else FORMAT_SCORE
    except Exception:  # d1's bare except: any failure is a formed but wrong answer
        return FORMAT_SCORE


def _same_numbers(equation: str, numbers: Sequence[int]) -> bool:
    # int() accepts any Unicode decimal digits, as \d matches them; past 4300 digits it
    # raises ValueError, which d1's bare except turns into "not the numbers" too.
    try:
        used = [int(token) for token in _NUMBER.findall(equation)]
    except ValueError:
        return False
    return sorted(used) == sorted(numbers)
