"""Mathematical equivalence of a predicted final answer and a reference, through math-verify.

math-verify (latex2sympy2_extended + sympy) parses both sides as LaTeX and compares them as
numbers (floats to 6 decimals), expressions, sets, intervals, tuples, matrices or equations;
``tests/tasks/test_math_grader.py`` lists the equivalences accepted and refused.

Grading is bounded and works in any thread: math-verify's signal-based timeouts are turned off
and :mod:`math_limits` provides a thread-safe time limit plus size checks (see there).
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from math_verify import LatexExtractionConfig, LatexNormalizationConfig, parse, verify

from bgpo_lightning.tasks.math_limits import (
    MAX_INTEGER_BITS,
    GradingTimeout,
    integer_bits_bound,
    is_small_text,
    time_limit,
)

# The longest MATH/MATH500 reference has 159 characters; a longer prediction is not an answer.
MAX_ANSWER_CHARS = 500
# Deepest bracket nesting ({, ( and [ together) of a prediction; references reach 5.
MAX_NESTING = 20
# Wall-clock budget of one comparison, reference parsing included; real pairs take < 1.5 s.
DEFAULT_TIME_LIMIT = 5.0

# math-verify's defaults without its unit stripping: that strips trailing "units" from a list
# holding single letters (c, d, h, m, s, t, ...), so "2c" reads as 2 and "a + b + c" as "a +".
# :func:`tidy` strips units written as \text{...} instead.
_LATEX_ONLY = [
    LatexExtractionConfig(
        normalization_config=LatexNormalizationConfig(
            basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all"
        )
    )
]
# LaTeX digit-group separators, as in 29,\!322 or 1{,}000 (math-verify misreads them in \frac).
_DIGIT_GROUP = re.compile(r"(?<=\d)(?:,\\!|\{,\})(?=\d{3})")
_LEADING_APPROX = re.compile(r"^\s*\\(?:approx|sim)(?![A-Za-z])")
_PHANTOM = re.compile(r"\\phantom\s*(?:\{[^{}]*\}|\S)")  # invisible: "\phantom -1" is 1
# \frac with an unbraced command argument, as in \frac\pi 2 (math-verify handles \frac12).
_UNBRACED_FRAC = re.compile(r"\\([dt]?frac)\s*(\\[A-Za-z]+)\s*(\\[A-Za-z]+|\w)")
# A unit after a value (not after a comma: "\text{A}, \text{C}" lists choices), e.g. 5\ \text{cm}^2.
_TEXT_UNIT = re.compile(
    r"(?<=[\w})\]])(?:\s|\\[ ,;:!])*\\(?:text|textnormal|textrm|mbox)\s*\{[^{}()]*\}"
    r"(?:\s*\^\s*(?:\d|\{\d\}))?\s*$"
)
_TRAILING_PUNCTUATION = re.compile(r"(?<!\\)[\s.,;]+$")


class _DropTimeoutDisabledWarning(logging.Filter):
    """math-verify warns once that its timeouts are off; :func:`time_limit` replaces them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutDisabledWarning())


def tidy(answer: str) -> str:
    """Rewrites LaTeX that math-verify misreads, without changing its value.

    Removes a leading ``\\approx``, digit-group separators ``,\\!`` and ``{,}``, ``\\phantom``
    material, trailing punctuation and a trailing unit in ``\\text{}``/``\\mbox{}`` (with an
    optional ``^2``) after a value; braces ``\\frac\\pi 2``; ``\\varnothing`` becomes
    ``\\emptyset``. MATH references use each of these.
    """
    answer = _LEADING_APPROX.sub("", answer).replace("\\varnothing", "\\emptyset")
    answer = _PHANTOM.sub("", _DIGIT_GROUP.sub("", answer))
    answer = _UNBRACED_FRAC.sub(r"\\\1{\2}{\3}", answer)
    answer = _TRAILING_PUNCTUATION.sub("", answer)
    value = _TEXT_UNIT.sub("", answer)
    return _TRAILING_PUNCTUATION.sub("", value) if value.strip() else answer


def parse_answer(answer: str) -> list[Any]:
    """Parses a :func:`tidy` answer as if it were the content of ``\\boxed{}``.

    Returns:
        math-verify's parse: ``[sympy_object, normalized_string]``, only ``[string]`` when
        sympy parsing fails, or ``[]``. Never raises, except :class:`GradingTimeout` under
        :func:`time_limit`.
    """
    return parse(
        "\\boxed{" + tidy(answer) + "}",
        extraction_config=_LATEX_ONLY,
        parsing_timeout=None,  # type: ignore[arg-type]  # None: no signal.alarm
    )


@functools.lru_cache(maxsize=16384)
def parse_reference(reference: str) -> tuple[Any, ...]:
    """:func:`parse_answer` of a reference, cached: all completions of a prompt share it."""
    return tuple(parse_answer(reference))


def is_equivalent(
    predicted: str | None, reference: str, time_limit_s: float = DEFAULT_TIME_LIMIT
) -> bool:
    """Whether a predicted final answer is mathematically equivalent to the reference.

    Never raises, and returns within about ``time_limit_s`` plus a few milliseconds.

    Args:
        predicted: The extracted answer (a ``\\boxed{}`` content, a number, ...), LaTeX or
            plain text; ``None`` (no answer) is never equivalent.
        reference: The reference answer, LaTeX or a number (trusted data).
        time_limit_s: Wall-clock budget for parsing and comparing; ``<= 0``: none.

    Returns:
        True if math-verify finds the two equal. False otherwise, including when the
        prediction is longer than :data:`MAX_ANSWER_CHARS`, nested deeper than
        :data:`MAX_NESTING`, could build integers over ``MAX_INTEGER_BITS`` bits, or takes
        too long. A side that sympy cannot parse only matches an identical normalized string.
    """
    try:
        if predicted is None or not reference.strip():
            return False
        if not is_small_text(predicted, MAX_ANSWER_CHARS, MAX_NESTING):
            return False
        with time_limit(time_limit_s):
            guess = parse_answer(predicted)
            if not guess or integer_bits_bound(guess) > MAX_INTEGER_BITS:
                return False
            gold = list(parse_reference(reference))
            # allow_set_relation_comp: "x \\ge 3" also matches a reference "[3, \\infty)".
            return bool(gold) and verify(
                gold, guess, allow_set_relation_comp=True, timeout_seconds=None
            )
    except (Exception, GradingTimeout):  # Untrusted text: any failure is a wrong answer.
        return False
