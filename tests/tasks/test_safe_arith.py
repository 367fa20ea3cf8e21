"""Tests for the safe arithmetic evaluator used on untrusted completions."""

from __future__ import annotations

from fractions import Fraction

import pytest

from bgpo_lightning.tasks.safe_arith import MAX_DEPTH, evaluate


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1+2*3", 7),
        ("(1+2)*3", 9),
        ("10/4", Fraction(5, 2)),
        ("1/3*3", 1),
        ("-3+5", 2),
        ("--3", 3),
        ("0.5*4", 2),
        (" 7 ", 7),
        ("(" * 90 + "1" + ")" * 90, 1),  # parentheses alone add no depth
        ("8-(3-1)", 6),
    ],
)
def test_evaluate_allowed_arithmetic(text: str, value) -> None:
    assert evaluate(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "2**99999",
        "2**3",
        "7//2",
        "7%2",
        "+3",
        "__import__('os').system('x')",
        "x+1",
        "abs(-1)",
        "(1).real",
        "1 if 1 else 2",
        "1<2",
        "[1]",
        "'1'",
        "2j",
        "True+1",
        "1e999",
        "",
        "1+",
        "(" * 100 + "1" + ")" * 100,
        "-" * (MAX_DEPTH + 5) + "1",
        "1+" * 150 + "1",
        "9" * 300,
    ],
)
def test_evaluate_rejects_everything_else(text: str) -> None:
    with pytest.raises(ValueError):
        evaluate(text)


def test_evaluate_division_by_zero() -> None:
    with pytest.raises(ZeroDivisionError):
        evaluate("1/0")
    with pytest.raises(ZeroDivisionError):
        evaluate("5/(3-3)")
