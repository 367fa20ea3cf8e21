"""Tests for the safe arithmetic evaluator used on untrusted completions."""

from __future__ import annotations

from fractions import Fraction

import pytest

from bgpo_lightning.tasks.safe_arith import (
    MAX_BITS,
    MAX_DEPTH,
    PYTHON_MAX_LENGTH,
    evaluate,
    evaluate_python,
)


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


@pytest.mark.parametrize(
    "text",
    [
        "1+2*3",
        "7/2",
        "7//2",
        "-7//2",
        "7.5//2",
        "2**10",
        "2**-3",
        "+3",
        "-+-3",
        "-" * 500 + "3",  # long unary chains are walked in a loop
        "(-8)**.5",  # complex, as eval gives
        "((-1)**.5)**2",
        "3.",
        ".5*4",
        "00",
        "1/3*3",
        "7/3*3",
        "\t 2*(3+4)",  # eval ignores leading spaces and tabs
        "(3+5\n)*2",
        "2**99999",
    ],
)
def test_evaluate_python_equals_eval(text: str) -> None:
    # eval on our own trusted literals is the reference.
    expected = eval(text, {"__builtins__": None}, {})  # noqa: S307
    got = evaluate_python(text)
    assert type(got) is type(expected) and got == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("99**99**99", ValueError),  # refused before computing: eval would not return
        ("2**100000", ValueError),  # 100001 bits > MAX_BITS
        ("2**50000*2**50001", ValueError),  # a product beyond MAX_BITS
        ("(2**60000)**2", ValueError),
        ("1/0", ZeroDivisionError),
        ("1//0", ZeroDivisionError),
        ("0**-1", ZeroDivisionError),
        ("10**400/1", OverflowError),  # int too large for a float, as in eval
        ("10.**400", OverflowError),
        ("(-8)**.5//1", TypeError),  # complex floor division, as in eval
        ("...", ValueError),
        ("()", ValueError),
        ("(3)(5)", ValueError),
        ("__import__('os')", ValueError),
        ("x", ValueError),
        ("7%2", ValueError),
        ("True", ValueError),
        ("05", ValueError),  # syntax error, as in eval
        ("(3+5)\n*2", ValueError),
        ("3+\u00a05", ValueError),
        ("\u0663+\u0665", ValueError),
        ("(" * 300 + "1" + ")" * 300, ValueError),
        ("1" * (PYTHON_MAX_LENGTH + 1), ValueError),
    ],
)
def test_evaluate_python_refuses_or_raises_like_eval(text: str, error: type) -> None:
    with pytest.raises(error):
        evaluate_python(text)


def test_evaluate_python_bounds_are_fast() -> None:
    assert evaluate_python("2**99999") == 2**99999
    assert evaluate_python("1**(10**30000)") == 1
    assert evaluate_python("(-1)**(10**30000+1)") == -1
    assert MAX_BITS == 100_000
