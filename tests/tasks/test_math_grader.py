"""Tests for math answer equivalence (math-verify) and the bounds that keep grading safe."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sympy

from bgpo_lightning.tasks.math_grader import (
    MAX_ANSWER_CHARS,
    is_equivalent,
    is_equivalent_in_process,
)
from bgpo_lightning.tasks.math_limits import (
    MAX_INTEGER_BITS,
    GradingTimeout,
    integer_bits_bound,
    is_small_text,
    nesting_depth,
    time_limit,
)
from bgpo_lightning.tasks.math_parse import parse_reference
from bgpo_lightning.tasks.math_text import tidy

# (predicted, reference) pairs a human grader accepts.
EQUIVALENT = [
    ("0.5", "\\frac{1}{2}"),
    ("\\frac{1}{2}", "0.5"),
    ("1.50", "\\frac{3}{2}"),
    ("-1.5", "-\\frac{3}{2}"),
    ("\\frac{-3}{2}", "-\\frac{3}{2}"),
    ("\\dfrac{3}{4}", "\\frac{3}{4}"),
    ("\\tfrac34", "0.75"),
    ("3/4", "\\frac{3}{4}"),
    ("(3,\\pi/2)", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\sqrt{2}/2", "\\frac{\\sqrt2}{2}"),
    ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}"),
    ("\\sqrt{3}/3", "\\frac{1}{\\sqrt{3}}"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("\\frac{\\sqrt{6}}{3}", "\\sqrt{\\frac{2}{3}}"),
    ("5\\text{ cm}", "5"),
    ("5", "5\\text{ cm}"),
    ("24\\text{ square units}", "24"),
    ("1.85", "1.85\\ \\text{USD}"),
    ("x=5", "5"),
    ("5", "x = 5"),
    ("k = 5", "5"),
    ("5\\%", "5"),
    ("0.05", "5\\%"),
    ("20\\%", "0.2"),
    ("90^\\circ", "90"),
    ("90", "90^\\circ"),
    ("30", "30^\\circ."),  # trailing punctuation in the reference
    ("1,000", "1000"),
    ("1000", "1{,}000"),
    ("10^6", "1,000,000"),
    ("\\dfrac{2469}{20000}", "\\dfrac{2469}{20,\\!000}"),
    ("\\$18.90", "18.90"),
    ("18.9", "\\$18.90"),
    ("10^{-3}", "0.001"),
    ("2^{10}", "1024"),
    ("\\binom{5}{2}", "10"),
    ("6!", "720"),
    ("\\frac{9}{4}", "2\\frac{1}{4}"),  # mixed number
    ("[2, 5)", "[2,5)"),
    ("\\left[ -2, 7 \\right]", "[-2,7]"),
    ("(1,\\infty)\\cup(-\\infty,0)", "(-\\infty,0)\\cup(1,\\infty)"),
    ("x \\ge 3", "[3, \\infty)"),
    ("(3,\\infty)", "x > 3"),
    ("\\{3, 1, 2\\}", "\\{1,2,3\\}"),
    ("3, 1, 2", "1, 2, 3"),  # a list of solutions: order is free
    ("-1, 1", "\\pm 1"),
    ("1 \\text{ or } -1", "\\pm 1"),
    ("x=3, y=4", "(3,4)"),
    ("(x+1)^2", "x^2+2x+1"),
    ("\\frac{x+1}{2}", "\\frac{x}{2} + \\frac{1}{2}"),
    ("a^2 b", "ba^2"),
    ("y = 3 + 2x", "y=2x+3"),
    ("2x+3", "y = 2x + 3"),
    ("\\cos^2 x", "\\cos(x)^2"),
    ("(\\sin t)^2", "\\sin^2 t"),
    ("3+2i", "2i+3"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
    ("\\begin{pmatrix} 0.5 & 1 \\end{pmatrix}", "\\begin{pmatrix} \\frac12 & 1 \\end{pmatrix}"),
    ("\\text{(C)}", "C"),
    ("C", "\\text{(C)}"),
    ("\\textbf{(C)}", "\\text{(C)}"),
    ("Navin", "\\text{Navin}"),
    ("\\mbox{even}", "\\text{even}"),
    ("\\emptyset", "\\varnothing"),
    ("\\infty", "\\infty"),
    ("8.24", "\\approx 8.24 \\text{ mph}"),
    ("2007 + \\frac{\\pi}{2}", "2007 + \\frac\\pi 2"),
    ("0.333333", "\\frac{1}{3}"),  # a decimal within 5e-6 (relative) of a value no decimal writes
]

# (predicted, reference) pairs that are close but wrong.
WRONG = [
    ("0.33", "\\frac{1}{3}"),
    ("0.667", "\\frac{2}{3}"),
    ("\\frac{1}{3}", "0.3"),
    ("(3,\\pi/3)", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("(\\pi/2, 3)", "\\left( 3, \\frac{\\pi}{2} \\right)"),  # ordered pair: order matters
    ("(4,3)", "(3,4)"),
    ("(1, 2, 3)", "(1, 3, 2)"),
    ("3\\sqrt{2}", "2\\sqrt{3}"),
    ("2\\sqrt{3}", "\\sqrt{6}"),
    ("\\sqrt{2}/3", "\\frac{\\sqrt{2}}{2}"),
    ("5\\sqrt{2}", "5\\sqrt{3}"),
    ("5", "5\\sqrt{2}"),
    ("-5", "5"),
    ("5", "-5"),
    ("-\\frac{1}{2}", "\\frac{1}{2}"),
    ("\\frac{2}{3}", "\\frac{3}{2}"),
    ("\\frac{1}{2}", "2"),
    ("17", "18"),
    ("19", "18"),
    ("12", "12.5"),
    ("9.9999999", "10"),
    ("1.0000001", "1"),
    ("123456789012", "123456789013"),
    ("1,000", "100"),
    ("1000", "1,001"),
    ("72", "\\$7.20"),
    ("25\\%", "0.025"),
    ("500", "5\\%"),
    ("4", "2^{3}"),
    ("(2,5]", "[2,5)"),  # open and closed ends swapped
    ("(2,5)", "[2,5]"),
    ("[1,2]", "[1,2)"),
    ("[5,2]", "[2,5]"),  # endpoints swapped
    ("(-\\infty, 3]", "(-\\infty, 3)"),
    ("x < 3", "x \\le 3"),
    ("x \\in (2, 5)", "[2,5]"),
    ("-\\infty", "\\infty"),
    ("\\{1,2\\}", "\\{1,2,3\\}"),
    ("1, 2", "1, 2, 3"),
    ("1,2,3", "1,2,4"),
    ("5", "\\pm 5"),
    ("5, -5", "5"),
    ("x^3", "x^2"),
    ("x^2+2x", "(x+1)^2"),
    ("x^2+1", "x^2-1"),
    ("\\frac{x}{2}", "\\frac{2}{x}"),
    ("2x", "2y"),
    ("y=2x+4", "y=2x+3"),
    ("y=5", "x=5"),
    ("x=6", "5"),
    ("\\sqrt{x}", "x^{1/3}"),
    ("\\frac{\\pi}{2}", "\\frac{\\pi}{3}"),
    ("2\\pi", "\\pi"),
    ("3.14", "\\pi"),
    ("3-2i", "3+2i"),
    ("\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ("\\begin{pmatrix} 1 & 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ("\\text{(B)}", "\\text{(C)}"),
    ("B", "\\text{(C)}"),
    ("\\text{odd}", "\\text{even}"),
    ("\\text{Tuesday}", "\\text{Monday}"),
    ("Vanin", "\\text{Navin}"),
    ("2c", "2"),  # a variable, not a unit
    ("a+b", "a + b + c"),
]


def test_lists_are_large_enough() -> None:
    assert len(EQUIVALENT) >= 40 and len(WRONG) >= 40


@pytest.mark.parametrize(("predicted", "reference"), EQUIVALENT)
def test_equivalent_answers(predicted: str, reference: str) -> None:
    assert is_equivalent(predicted, reference)


@pytest.mark.parametrize(("predicted", "reference"), WRONG)
def test_close_but_wrong_answers(predicted: str, reference: str) -> None:
    assert not is_equivalent(predicted, reference)


@pytest.mark.parametrize(
    ("predicted", "reference", "expected"),
    [
        # Decisions worth knowing (math-verify's, kept on purpose):
        ("43", "43_5", True),  # a base on one side only: the digits are graded
        ("\\frac{\\pi}{6}", "30^\\circ", False),  # degrees are not converted to radians
        ("\\log 2", "\\ln 2", False),  # \log is not read as the natural logarithm
        ("5 cm", "5", False),  # units count only inside \text{} (but GSM8K): "5 cm" is 5*c*m
        ("e", "\\text{(E)}", True),  # choice letters compare case-insensitively
    ],
)
def test_documented_edge_cases(predicted: str, reference: str, expected: bool) -> None:
    assert is_equivalent(predicted, reference) is expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("30^\\circ.", "30^\\circ"),
        ("\\text{(E)},", "\\text{(E)}"),
        ("29,\\!322,\\!216", "29322216"),
        ("1{,}000", "1000"),
        ("\\approx 8.24 \\text{ mph}", " 8.24"),
        ("5 \\mbox{ cm}^2", "5"),
        ("\\text{(C)}", "\\text{(C)}"),  # nothing before: not a unit
        ("\\text{A}, \\text{C}", "\\text{A}, \\text{C}"),  # a list of choices
        ("1 & \\phantom -1", "1 & 1"),
        ("\\frac\\pi 2", "\\frac{\\pi}{2}"),
        ("\\varnothing", "\\emptyset"),
        ("5\\,", "5\\,"),
    ],
)
def test_tidy(answer: str, expected: str) -> None:
    assert tidy(answer) == expected


def test_no_answer_or_no_reference_is_never_equivalent() -> None:
    assert not is_equivalent(None, "5")
    assert not is_equivalent("5", "")
    assert not is_equivalent("", "")
    assert not is_equivalent("   ", "5")


def test_reference_is_parsed_once() -> None:
    # In process, as in each worker: the worker's cache is the same function's.
    reference = "\\frac{17}{19}"
    assert is_equivalent_in_process("17/19", reference)
    hits = parse_reference.cache_info().hits
    assert is_equivalent_in_process("\\dfrac{17}{19}", reference)
    assert parse_reference.cache_info().hits == hits + 1


JUNK = [
    "",
    "{",
    "}",
    "}{",
    "\\",
    "\\\\\\",
    "$$",
    "\\boxed{",
    "\\frac{",
    "\\frac{1}{",
    "\\begin{pmatrix}",
    "\\left(",
    "\\text{",
    "1/0",
    "\\frac{1}{0}",
    "0^0",
    "\\infty - \\infty",
    "nan",
    "zoo",
    "\\sqrt{-1}",
    "%",
    "<<>>",
    "\x00",
    "\udcff",
    "\U0001f600",
    "x" * MAX_ANSWER_CHARS,
    "#" * 10_000,
    "".join(chr(i) for i in range(32, 2000)),
]


@pytest.mark.parametrize("predicted", JUNK, ids=range(len(JUNK)))
def test_junk_never_raises(predicted: str) -> None:
    assert is_equivalent(predicted, "5") is False
    assert is_equivalent(predicted, "\\frac{1}{2}") is False


PATHOLOGICAL = {
    "power tower": "9^{9^{9^{9}}}",
    "huge power": "10^{10^{12}}",
    "huge factorial": "(10^{9})!",
    "huge binomial": "\\binom{10^{9}}{5\\cdot 10^{8}}",
    "huge product": "\\prod_{k=1}^{10^{7}} k",
    "huge sum": "\\sum_{n=1}^{10^{12}} n",
    "slow integral": "\\int_0^{10^9} x^{x} dx",
    "matrix power": "\\begin{pmatrix}1&1\\\\1&0\\end{pmatrix}^{10^{9}}",
    "deep braces": "{" * 3000 + "1" + "}" * 3000,
    "deep fractions": "\\frac{1}{" * 300 + "2" + "}" * 300,
    "long sum": "+".join(["1"] * 3000),
    "too long": "1+" * 400 + "1",
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_answers_are_bounded(name: str) -> None:
    start = time.perf_counter()
    assert is_equivalent(PATHOLOGICAL[name], "5", time_limit_s=1.0) is False
    assert time.perf_counter() - start < 5.0  # 1 s budget, generous for loaded machines


def test_grading_from_worker_threads() -> None:
    pairs = EQUIVALENT[:10] + WRONG[:10] + [(PATHOLOGICAL["power tower"], "5")]
    expected = [True] * 10 + [False] * 11
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda pair: is_equivalent(*pair, time_limit_s=2.0), pairs))
    assert results == expected


def test_slow_grading_in_a_worker_thread_times_out() -> None:
    results: list[tuple[bool, float]] = []

    def grade() -> None:
        start = time.perf_counter()
        ok = is_equivalent(PATHOLOGICAL["slow integral"], "5", time_limit_s=0.5)
        results.append((ok, time.perf_counter() - start))

    worker = threading.Thread(target=grade)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert results and results[0][0] is False and results[0][1] < 3.0


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@pytest.mark.parametrize("in_thread", [False, True])
def test_time_limit_interrupts_python_loops(in_thread: bool) -> None:
    outcome: list[str] = []

    def body() -> None:
        start = time.perf_counter()
        try:
            with time_limit(0.2):
                _spin(5.0)
            outcome.append("finished")
        except GradingTimeout:
            outcome.append(f"timeout after {time.perf_counter() - start:.2f}s")

    if in_thread:
        worker = threading.Thread(target=body)
        worker.start()
        worker.join(timeout=10)
    else:
        body()
    assert len(outcome) == 1 and outcome[0].startswith("timeout")
    assert float(outcome[0].split()[-1][:-1]) < 2.0


def test_time_limit_never_fires_after_the_block() -> None:
    for _ in range(200):
        with time_limit(0.01):
            _spin(0.0001)
    _spin(0.1)  # a late exception would surface here
    with time_limit(0):  # 0: no limit
        _spin(0.01)


def test_nesting_and_size_checks() -> None:
    assert nesting_depth("\\frac{\\sqrt{2}}{(3)}") == 2
    assert nesting_depth("[1,2)") == 1
    assert nesting_depth(")))(((") == 3
    assert is_small_text("5", 10, 2)
    assert not is_small_text("  ", 10, 2)
    assert not is_small_text("1" * 11, 10, 2)
    assert not is_small_text("(((1)))", 10, 2)


def test_integer_bits_bound() -> None:
    def power(base, exponent):
        return sympy.Pow(base, exponent, evaluate=False)

    x = sympy.Symbol("x")
    assert integer_bits_bound(sympy.Integer(5)) == 3
    assert integer_bits_bound(power(2, 2005)) <= 5000
    assert integer_bits_bound(sympy.factorial(sympy.Integer(100), evaluate=False)) < 1000
    assert integer_bits_bound([x**2 + 1, sympy.pi]) < 10
    assert integer_bits_bound(power(1, power(9, 9))) < 100  # 1^n never grows
    too_big = [
        power(9, power(9, power(9, 9))),
        power(10, 10**6),
        power(power(2, 1000), 1000),
        sympy.factorial(sympy.Integer(10**6), evaluate=False),
        sympy.binomial(sympy.Integer(10**6), 5, evaluate=False),
        sympy.Product(x, (x, 1, 10**7)),
        power(x, power(10, 9)),
    ]
    for expr in too_big:
        assert integer_bits_bound(expr) > MAX_INTEGER_BITS, expr


def test_time_limits_of_several_threads_fire_in_their_own_thread() -> None:
    # One watchdog thread serves them all, whatever order their deadlines come in.
    outcome: dict[float, str] = {}

    def body(seconds: float) -> None:
        start = time.perf_counter()
        try:
            with time_limit(seconds):
                _spin(seconds + 3.0)
            outcome[seconds] = "finished"
        except GradingTimeout:
            outcome[seconds] = f"{time.perf_counter() - start:.2f}"

    workers = [threading.Thread(target=body, args=(s,)) for s in (0.6, 0.2, 0.4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=20)
    assert sorted(outcome) == [0.2, 0.4, 0.6]
    for seconds, elapsed in outcome.items():
        assert elapsed != "finished" and seconds <= float(elapsed) < seconds + 2.0
