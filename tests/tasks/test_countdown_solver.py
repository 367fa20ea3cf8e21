"""Tests for the exact Countdown solver."""

from __future__ import annotations

import re
from fractions import Fraction
from itertools import product

import pytest

from bgpo_lightning.tasks.countdown_solver import solve
from bgpo_lightning.tasks.safe_arith import evaluate


def _check(numbers: list[int], target: int) -> str:
    expression = solve(numbers, target)
    assert expression is not None, (numbers, target)
    assert evaluate(expression) == target
    assert sorted(map(int, re.findall(r"[0-9]+", expression))) == sorted(numbers)
    return expression


@pytest.mark.parametrize(
    ("numbers", "target"),
    [
        ([3, 5, 2], 16),
        ([30, 100, 93], 23),
        ([83, 18, 75], 10),
        ([4, 4, 4, 4], 17),
        ([1, 5, 5, 5], 24),  # needs a fraction: 5*(5-1/5)
        ([3, 3, 8, 8], 24),  # 8/(3-8/3)
        ([7, 7], 0),
        ([6, 2], 3),
        ([2, 6], 3),  # order of the inputs does not matter
        ([9], 9),
        ([1, 2, 3, 4, 5], 119),  # 5*4*3*2-1
    ],
)
def test_solver_finds_exact_expressions(numbers: list[int], target: int) -> None:
    _check(numbers, target)


@pytest.mark.parametrize(
    ("numbers", "target"), [([1, 1, 1], 100), ([2, 2], 5), ([9], 8), ([1, 1, 1, 1], 30)]
)
def test_solver_reports_unsolvable(numbers: list[int], target: int) -> None:
    assert solve(numbers, target) is None


def test_solver_agrees_with_brute_force_on_three_small_numbers() -> None:
    # Brute force: every ordering/parenthesization of a op b op c, evaluated exactly.
    ops = {
        "+": lambda x, y: x + y,
        "-": lambda x, y: x - y,
        "*": lambda x, y: x * y,
        "/": lambda x, y: x / y if y else None,
    }

    def reachable(a: Fraction, b: Fraction, c: Fraction) -> set[Fraction]:
        out = set()
        for (x, y, z), (o1, o2) in product(
            [(a, b, c), (a, c, b), (b, a, c), (b, c, a), (c, a, b), (c, b, a)], product(ops, ops)
        ):
            left = ops[o1](x, y)
            if left is not None and (v := ops[o2](left, z)) is not None:
                out.add(v)
            right = ops[o2](y, z)
            if right is not None and (v := ops[o1](x, right)) is not None:
                out.add(v)
        return out

    for numbers in [(1, 2, 3), (2, 3, 7), (4, 6, 9), (5, 5, 8)]:
        values = reachable(*map(Fraction, numbers))
        for target in range(-5, 60):
            found = solve(list(numbers), target)
            assert (found is not None) == (Fraction(target) in values), (numbers, target)
            if found is not None:
                _check(list(numbers), target)


def test_solver_uses_minimal_parentheses() -> None:
    assert solve([3, 5, 2], 16) == "(3+5)*2"
    assert solve([2, 3, 4], 24) == "2*3*4"
    assert "(" not in solve([10, 2, 3], 11)


def test_solver_rejects_too_many_numbers() -> None:
    with pytest.raises(ValueError, match="1 to 5"):
        solve([1, 2, 3, 4, 5, 6], 7)
    with pytest.raises(ValueError, match="1 to 5"):
        solve([], 0)
