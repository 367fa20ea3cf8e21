"""Tests for final-answer extraction from math completions (no sympy involved)."""

from __future__ import annotations

import time

import pytest

from bgpo_lightning.tasks.math_answer import (
    braced_group,
    extract_final_answer,
    hashes_answer,
    last_boxed,
    last_number,
    numbers_in,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{5}", "5"),
        ("so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("\\boxed{1} first, then \\boxed{2}", "2"),  # the last box wins
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),  # escaped braces do not close the box
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("\\boxed{ 7 }", "7"),
        ("\\boxed {7}", "7"),
        ("\\boxed 7.", "7"),  # bare token, trailing period dropped
        ("\\boxed 7$ and more", "7"),
        ("\\fbox{8}", "8"),
        ("\\boxed{\\boxed{3}}", "\\boxed{3}"),  # nested boxes belong to the outer one
        ("\\boxed{x} then \\boxed{\\text{y}} text 9", "\\text{y}"),
        ("\\boxed{$5$}", "5"),
        ("\\boxed{a\\\\b}", "a\\\\b"),  # a LaTeX line break is not an escaped brace
    ],
)
def test_last_boxed(text: str, expected: str) -> None:
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    "text", ["\\boxed{3", "\\boxed{1} then \\boxed{", "\\boxed{}", "\\boxed", "\\boxed{ }"]
)
def test_empty_or_unclosed_last_box_is_no_answer(text: str) -> None:
    assert last_boxed(text) == ""
    assert extract_final_answer(text) is None  # the box decides: no fallback to numbers


def test_no_box() -> None:
    assert last_boxed("the answer is 5") is None
    assert last_boxed("\\boxedx{3} 4") is None  # another command
    assert extract_final_answer("\\boxedx{3} 4") == "4"


def test_braced_group() -> None:
    assert braced_group("x{a{b}c}d", 1) == ("a{b}c", 8)
    assert braced_group("{\\}}", 0) == ("\\}", 4)
    assert braced_group("{{}", 0) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 42.", "42"),
        ("costs $1,234.50 total", "1234.50"),
        ("I owe -$5", "-5"),
        ("a change of -3", "-3"),
        ("3-5", "5"),  # binary minus: not a sign
        ("x-1", "1"),
        ("(2)-1", "1"),
        ("\u22127 degrees", "-7"),  # Unicode minus sign
        ("about .5 of it", ".5"),
        ("ratio 3/4.", "3/4"),
        ("10,00 and", "00"),  # not a thousands grouping
        ("1,000,000 people", "1000000"),
        ("values 1,2,3", "3"),
        ("\\$18.90", "18.90"),
        ("no digits here", None),
        ("", None),
    ],
)
def test_last_number(text: str, expected: str | None) -> None:
    assert last_number(text) == expected


def test_numbers_in() -> None:
    assert numbers_in("from -2 to 3.5, then 1,000 and 7/8") == ["-2", "3.5", "1000", "7/8"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("steps\n#### 72", "72"),
        ("#### 1,080", "1080"),
        ("#### -3", "-3"),
        ("#### $18 dollars", "18"),
        ("#### 1\n#### 2", "2"),
        ("#### x", "x"),
        ("####", ""),
        ("no hashes", None),
    ],
)
def test_hashes_answer(text: str, expected: str | None) -> None:
    assert hashes_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Reasoning... so \\boxed{\\frac{3}{4}}. Check: 5", "\\frac{3}{4}"),
        ("Janet makes 9 * 2 = $<<9*2=18>>18.\n#### 18", "18"),
        ("#### 5 but \\boxed{6}", "6"),  # a box beats ####
        ("2 + 3 = 5, so 5 apples remain.", "5"),
        ("<answer>\\boxed{7}</answer>", "7"),
        ("####", None),
        ("nothing", None),
    ],
)
def test_extract_final_answer(text: str, expected: str | None) -> None:
    assert extract_final_answer(text) == expected


JUNK = [
    "",
    "{" * 10_000,
    "}" * 10_000,
    "\\boxed{" * 5_000,
    "\\boxed" * 5_000,
    "\\" * 10_001,
    "9" * 100_000,
    "1," * 50_000,
    "-" * 50_000 + "1",
    "#" * 10_000,
    "\x00\udcff\U0001f600 \\boxed{\x00}",
    "".join(chr(i) for i in range(0, 3000)),
]


@pytest.mark.parametrize("text", JUNK, ids=range(len(JUNK)))
def test_junk_is_fast_and_never_raises(text: str) -> None:
    start = time.perf_counter()
    result = extract_final_answer(text)
    assert result is None or isinstance(result, str)
    assert time.perf_counter() - start < 2.0
