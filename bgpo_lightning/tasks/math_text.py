"""Rewrites of an answer's LaTeX text, before math-verify parses it; pure string functions.

Each rewrite keeps the value and only fixes notation that math-verify misreads (digit groups,
repeating decimals, lists of choices in one ``\\text{}``) or that needs the other side to
decide (percent signs, base subscripts, words after a number).
"""

from __future__ import annotations

import re
from fractions import Fraction

# LaTeX digit-group separators between a digit and three more: 29,\!322, 1{,}000, 10\,080,
# 10\ 080, 10\;080, 10\:080 (math-verify misreads them, e.g. 10\,080 as 10 + 080).
_DIGIT_GROUP = re.compile(r"(?<=\d)(?:,\\!|\{,\}|\\[,;: ])(?=\d{3}(?!\d))")
_LEADING_APPROX = re.compile(r"^\s*\\(?:approx|sim)(?![A-Za-z])")
_PHANTOM = re.compile(r"\\phantom\s*(?:\{[^{}]*\}|\S)")  # invisible: "\phantom -1" is 1
# \frac with an unbraced command argument, as in \frac\pi 2 (math-verify handles \frac12).
_UNBRACED_FRAC = re.compile(r"\\([dt]?frac)\s*(\\[A-Za-z]+)\s*(\\[A-Za-z]+|\w)")
# A repeating decimal, 0.\overline{3} or 1.2\bar{45}: integer part, fixed digits, period.
_REPEATING = re.compile(r"(?<![\d.])(\d*)\.(\d*)\\(?:overline|bar)\s*(?:\{\s*(\d+)\s*\}|(\d))")
# One \text{} holding a list of choices, as in \text{A,C} or \text{(A), (C)}.
_TEXT_LIST = re.compile(r"\\text\s*\{(\s*\(?[A-Za-z]+\)?\s*(?:,\s*\(?[A-Za-z]+\)?\s*)+)\}")
# A unit after a value (not after a comma: "\text{A}, \text{C}" lists choices), e.g. 5\ \text{cm}^2.
_TEXT_UNIT = re.compile(
    r"(?<=[\w})\]])(?:\s|\\[ ,;:!])*\\(?:text|textnormal|textrm|mbox)\s*\{[^{}()]*\}"
    r"(?:\s*\^\s*(?:\d|\{\d\}))?\s*$"
)
_TRAILING_PUNCTUATION = re.compile(r"(?<!\\)[\s.,;]+$")
_TRAILING_PERCENT = re.compile(r"\s*\\?%\s*$")
# A number written in base b, as in 52_9 or 1011_{2}: digits (at least one decimal digit,
# so x_1 is a variable) and the base.
_BASED = re.compile(r"^\s*([0-9A-Za-z]*[0-9][0-9A-Za-z]*)\s*_\s*(?:\{\s*(\d+)\s*\}|(\d))\s*$")
# A number followed by plain words, as in "18 apples" or "\$5 per hour".
_NUMBER_THEN_WORDS = re.compile(
    r"^\s*((?:\\?\$\s*)?-?\s*(?:\\?\$\s*)?\d[\d,]*(?:\.\d+)?)\s+[A-Za-z][A-Za-z' -]*\.?\s*$"
)
# "or" between conditions: \text{ or } or a bare word "or" (tidy writes \lor and \vee so).
_OR = re.compile(r"\\text\s*\{\s*or\s*\}|(?<![A-Za-z\\])or(?![A-Za-z])")
_LOGICAL_OR = re.compile(r"\\(?:lor|vee)(?![A-Za-z])")  # math-verify cannot parse these


def _repeating_to_fraction(match: re.Match[str]) -> str:
    whole, fixed, period = match.group(1) or "0", match.group(2), match.group(3) or match.group(4)
    # whole.fixed(period) = (digits up to the period - digits before it) / (10^f (10^p - 1))
    numerator = int(whole + fixed + period) - int(whole + fixed)
    value = Fraction(numerator, 10 ** len(fixed) * (10 ** len(period) - 1))
    if value.denominator == 1:
        return str(value.numerator)
    return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


def _split_text_list(match: re.Match[str]) -> str:
    return ", ".join(f"\\text{{{item.strip()}}}" for item in match.group(1).split(","))


def tidy(answer: str) -> str:
    """Rewrites LaTeX that math-verify misreads, without changing its value.

    Removes a leading ``\\approx``, digit-group separators (``,\\!``, ``{,}``, ``\\,`` ...),
    ``\\phantom`` material, trailing punctuation and a trailing unit in ``\\text{}``/``\\mbox{}``
    (with an optional ``^2``) after a value; braces ``\\frac\\pi 2``; writes repeating decimals
    (``0.\\overline{3}``) as fractions; splits ``\\text{A,C}`` into ``\\text{A}, \\text{C}``;
    ``\\lor`` and ``\\vee`` become ``\\text{ or }``, ``\\varnothing`` becomes ``\\emptyset``.
    MATH references use most of these.
    """
    answer = _LEADING_APPROX.sub("", answer).replace("\\varnothing", "\\emptyset")
    answer = _PHANTOM.sub("", _DIGIT_GROUP.sub("", answer))
    answer = _UNBRACED_FRAC.sub(r"\\\1{\2}{\3}", answer)
    answer = _REPEATING.sub(_repeating_to_fraction, answer)
    answer = _TEXT_LIST.sub(_split_text_list, answer)
    answer = _LOGICAL_OR.sub(r"\\text{ or }", answer)
    answer = _TRAILING_PUNCTUATION.sub("", answer)
    value = _TEXT_UNIT.sub("", answer)
    return _TRAILING_PUNCTUATION.sub("", value) if value.strip() else answer


def has_percent(answer: str) -> bool:
    """Whether a tidy answer ends with a percent sign."""
    return _TRAILING_PERCENT.search(answer) is not None


def percent_readings(answer: str) -> list[str]:
    """The ways to read a tidy answer: ``37.5\\%`` is 0.375 or, as the question asked, 37.5.

    Only for a percent compared with a number: two percents compare as written.
    """
    bare = _TRAILING_PERCENT.sub("", answer)
    return [answer, bare] if bare != answer and bare.strip() else [answer]


def based_number(answer: str) -> tuple[str, int] | None:
    """``(digits, base)`` if the tidy answer is one number with a base subscript, as ``52_9``."""
    match = _BASED.match(answer)
    if match is None:
        return None
    base = int(match.group(2) or match.group(3))
    return (match.group(1), base) if 2 <= base <= 36 else None


def same_based_number(a: tuple[str, int], b: tuple[str, int]) -> bool:
    """Whether two based numbers are the same number (``52_9`` is ``47_{10}``, not ``52_8``)."""
    try:
        return int(a[0], a[1]) == int(b[0], b[1])
    except ValueError:  # digits beyond the base: equal only as written
        return (a[0].lower(), a[1]) == (b[0].lower(), b[1])


def number_before_words(answer: str) -> str | None:
    """The number of ``18 apples`` (a number then plain words), or ``None``.

    Only for answers that never contain variables (GSM8K): there the words are units.
    """
    match = _NUMBER_THEN_WORDS.match(answer)
    return match.group(1) if match else None


def says_or(answer: str) -> bool:
    """Whether the answer joins conditions with "or" (``x<-5 \\text{ or } x>7``)."""
    return _OR.search(answer) is not None
